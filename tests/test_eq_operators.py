"""The equivariance operators on maps whose answer is known (bench.metrics, bench.lie).

* the identity network: 0 under every operator;
* a linear lift over a dyadic grid with dilated kernels (circular padding): exactly
  scale-shift equivariant at ratios 2 and 4 under the ideal low-pass, clearly not
  under the plain slice-to-slice comparison;
* ``lie`` of ``fourier_resize`` itself vanishes on band-limited content; ``lie`` of a
  3x3 box blur does not, and equals a finite-difference estimate.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleqbench import methods
from scaleqbench.bench.run.lie import lie_derivatives, scale_generator
from scaleqbench.bench.run.metrics import (
    OPERATORS,
    operator_errors,
    scale_shift_headline,
    scale_shift_left_out,
)
from scaleqbench.datasets.scaling import fourier_resize, fourier_zoom
from scaleqbench.methods.scale_axis import ScaleAxis, scale_axes_of

FAST = settings(max_examples=5, deadline=None)


def _images(seed: int, b: int = 2, c: int = 1, n: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, n, n, generator=g, dtype=torch.float64)


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.sampled_from([12, 15, 16]))
def test_the_identity_network_is_equivariant_under_every_operator(seed, n):
    x = _images(seed, n=n)
    sizes = [n // 2, n - 3]
    errs = operator_errors(lambda z: {"id": z}, None, x, sizes, OPERATORS)
    for op, per_layer in errs.items():
        values = [v for per_size in per_layer.values() for v in per_size.values()]
        assert len(values) == len(sizes) and max(values) < 1e-20, (op, per_layer)


class DyadicLift(torch.nn.Module):
    """``f(x)[c, s] = k_c (dilated 2^s) * x``, circular: exactly equivariant to the ideal
    2x (and 4x) down-scaling as a shift along its scale axis (sigma_s = 2^s)."""

    def __init__(self, kernels: torch.Tensor, n_scales: int = 3):
        super().__init__()
        self.kernels, self.n_scales = kernels, n_scales

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        k = self.kernels.shape[-1] // 2
        maps = []
        for s in range(self.n_scales):
            d = 2 ** s
            xp = F.pad(x, (d * k,) * 4, mode="circular")
            maps.append(F.conv2d(xp, self.kernels, dilation=d))
        return {"lift": torch.stack(maps, 2).flatten(1, 2)}  # channel-major c * S + s

    def scale_axes(self) -> dict[str, ScaleAxis]:
        return {"lift": ScaleAxis(tuple(2.0 ** s for s in range(self.n_scales)))}


@FAST
@given(seed=st.integers(0, 2**16))
def test_a_dyadic_lift_is_scale_shift_equivariant_and_not_plainly(seed):
    g = torch.Generator().manual_seed(seed)
    model = DyadicLift(torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64))
    x = _images(seed, b=3, n=32)
    axes = scale_axes_of(model)
    errs = operator_errors(model.features, None, x, [8, 16, 20], ("ideal", "scale-shift"), axes)
    shift, plain = errs["scale-shift"]["lift"], errs["ideal"]["lift"]
    assert set(shift) == {8, 16}  # 20 px is off the dyadic grid: not reported
    assert shift[16] < 1e-20 and shift[8] < 1e-20
    # without the shift the error is of order 1e-2 (its least over 400 seeds: 7.3e-3), at
    # least 17 orders above the shifted one; 1e-2 here failed for one seed hypothesis drew
    assert plain[16] > 1e-3 and plain[8] > 1e-3
    # slices that fall off the axis are counted: one of three at 2x, two at 4x
    assert scale_shift_left_out(axes, 32, [8, 16, 20]) == {"lift": {8: 2, 16: 1}}
    assert scale_shift_headline(errs["scale-shift"], axes) < 1e-20


def test_scale_axis_pairs_follow_the_grid_to_half_a_pixel():
    axis = ScaleAxis((1.5, 2.6, 4.5))  # the published sesn_vector scales
    assert axis.pairs(28, 16) == [(0, 1), (1, 2)]  # 28 * 1.5 / 2.6 = 16.15
    assert axis.pairs(28, 9) == [(0, 2)]  # 28 / 3 = 9.33
    assert axis.pairs(28, 14) == [] and axis.pairs(28, 28) == []
    x = torch.arange(2 * 6 * 1 * 1.0).reshape(2, 6, 1, 1)  # two channels, three scales
    assert axis.take(x, [2])[0, :, 0, 0, 0].tolist() == [2.0, 5.0]
    with pytest.raises(ValueError):
        ScaleAxis((2.0, 1.0))


@pytest.mark.parametrize("name, lifted", [
    ("sesn", set()), ("sesn_vector", {"block1", "block2"}), ("dss", {"block1", "block2"}),
    ("dss_scalar", set()), ("disco", {"block1", "block2", "block3"}), ("sevf", set()),
    ("cnn", set()),
])
def test_models_declare_the_scale_axes_their_features_carry(name, lifted):
    torch.manual_seed(0)
    model = methods.create(name, config="quick").eval()
    axes = scale_axes_of(model)
    assert set(axes) == lifted
    with torch.no_grad():
        feats = model.features(torch.rand(2, 1, 20, 20))
    for layer, axis in axes.items():
        assert feats[layer].shape[1] % axis.size == 0 and axis.size >= 2


def _blob(n: int, width: float) -> torch.Tensor:
    """A centred Gaussian (well inside the band and the period): ``(1, 1, n, n)``."""
    u = torch.arange(n, dtype=torch.float64) / n - 0.5
    g = torch.exp(-(u / width) ** 2 / 2)
    return (g[:, None] * g[None, :])[None, None]


def test_lie_of_fourier_resize_vanishes_on_band_limited_content():
    x = _blob(33, 0.09)
    (deriv, fx), = lie_derivatives(lambda z: {"r": fourier_resize(z, 21)}, x).values()
    ratio = (deriv ** 2).sum() / (fx ** 2).sum()
    blurred = lie_derivatives(lambda z: {"b": _box(z)}, x)["b"]
    assert ratio < 1e-6 < (blurred[0] ** 2).sum() / (blurred[1] ** 2).sum()


def _box(x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, torch.full((1, 1, 3, 3), 1 / 9, dtype=x.dtype), padding=1)


@FAST
@given(seed=st.integers(0, 2**16))
def test_lie_of_a_box_blur_is_positive_and_matches_finite_differences(seed):
    x = fourier_resize(_images(seed, b=1, n=21), 21)  # odd: the zoom at factor 1 is exact
    (deriv, fx), = lie_derivatives(lambda z: {"b": _box(z)}, x).values()
    h = 1e-4

    def g(t: float) -> torch.Tensor:  # S_t^{-1} f(S_t x) to first order: f(S_t x) - S_t f(x)
        return _box(fourier_zoom(x, math.exp(t))) - fourier_zoom(_box(x), math.exp(t))

    fd = (g(h) - g(-h)) / (2 * h)
    assert (deriv ** 2).sum() / (fx ** 2).sum() > 1e-3
    assert torch.allclose(deriv, fd, rtol=1e-5, atol=1e-6 * deriv.abs().max().item())


def test_the_generator_is_the_derivative_of_the_zoom():
    x = _images(3, n=15)
    h = 1e-5
    fd = (fourier_zoom(x, math.exp(h)) - fourier_zoom(x, math.exp(-h))) / (2 * h)
    assert torch.allclose(scale_generator(x), fd, atol=1e-6)


class _BoxNoForwardMode(torch.autograd.Function):
    """A box blur as an autograd Function without a forward-mode rule (as the Fourier
    network's layers are): ``torch.func.jvp`` cannot go through it."""

    @staticmethod
    def forward(ctx, x):
        return _box(x)

    @staticmethod
    def backward(ctx, g):
        return _box(g)


def test_lie_falls_back_to_a_central_difference_without_forward_mode():
    x = fourier_resize(_images(5, b=2, n=21), 21)
    exact, _ = lie_derivatives(lambda z: {"b": _box(z)}, x)["b"]
    got = lie_derivatives(lambda z: {"b": _BoxNoForwardMode.apply(z)}, x,
                          lambda z: _BoxNoForwardMode.apply(z).mean((1, 2, 3))[:, None])
    assert torch.allclose(got["b"][0], exact, rtol=1e-3, atol=1e-4 * exact.abs().max().item())
    assert got["logits"][0].abs().max() > 1e-3  # not the zeros a double backward would give
