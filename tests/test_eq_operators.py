"""The equivariance operators on maps whose answer is known (bench.run.metrics, bench.run.lie,
and the model-level check_equivariance of bench.run.equivariance).

* the identity network: 0 under every operator;
* a linear lift over a dyadic grid with dilated kernels (circular padding): exactly
  scale-shift equivariant at ratios 2 and 4 under the ideal low-pass, clearly not
  under the plain slice-to-slice comparison;
* ``lie`` of ``fourier_resize`` itself vanishes on band-limited content; ``lie`` of a
  3x3 box blur does not, and equals a finite-difference estimate;
* ``check_equivariance``: 0 for an identity / ideal-pooling model under every operator at
  any sizes, at most 1e-12 for the float64 Fourier network at every size, clearly more for
  a plain CNN (its argument checks: tests/test_api.py).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleqbench import methods
from scaleqbench.bench.run.equivariance import check_equivariance, default_sizes
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


# --- check_equivariance: the model-level entry point -------------------------------------------

class Exact(torch.nn.Module):
    """An identity map and an ideal 2x pooling (``fourier_resize`` to half the size), and the
    spatial mean as logits: exactly equivariant (and invariant) under ``ideal``; a box blur
    beside them, which is not."""

    def __init__(self, blur: bool = False):
        super().__init__()
        self.blur = blur

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = {"id": x, "pool": fourier_resize(x, math.ceil(x.shape[-1] / 2))}
        if self.blur:
            maps["blur"] = _box(x[:, :1])
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(6, 20), data=st.data())
def test_check_equivariance_of_an_exact_identity_and_pooling_model(seed, n, data):
    sizes = data.draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=4, unique=True))
    chunk = data.draw(st.integers(1, 3))
    x = _images(seed, b=3, c=2, n=n)
    for op in ("ideal", "scale-shift"):
        res = check_equivariance(Exact(), x, op, sizes, chunk=chunk)
        assert res.sizes == tuple(sizes) and res.images == 3 and res.full_size == n
        assert list(res.per_layer) == ["id", "pool"] and set(res.logits) == set(sizes)
        values = [v for d in res.nested().values() for v in d.values()]
        assert max(values) < 1e-20, (op, res.nested())
        assert res.summary_layer == "pool" and res.summary < 1e-20
    # the identity commutes with the bicubic rescale and with the zoom of the Lie derivative
    # too (the ideal pooling, an ideal low-pass, with neither)
    for op in ("bicubic", "lie"):
        res = check_equivariance(Exact(), x, op, sizes, chunk=chunk)
        assert set(res.per_layer["id"]) == set(sizes)
        assert max(res.per_layer["id"].values()) < 1e-20, op


def test_check_equivariance_sees_a_blur_and_averages_like_the_records():
    x = _images(1, b=5, c=2, n=16)
    res = check_equivariance(Exact(blur=True), x, sizes=[6, 8, 12], chunk=2)
    assert min(res.per_layer["blur"].values()) > 1e-4  # a blur is no scale-equivariant map
    assert res.summary_layer == "blur"
    assert res.summary == pytest.approx(sum(res.per_layer["blur"].values()) / 3, rel=1e-15)
    # chunks are averaged weighted by their images: the chunking changes only the rounding
    whole = check_equivariance(Exact(blur=True), x, sizes=[6, 8, 12], chunk=64)
    assert whole.summary == pytest.approx(res.summary, rel=1e-12)
    # the same numbers as the per-image definition, on all images at once
    direct = operator_errors(Exact(blur=True).features, Exact(), x, [6, 8, 12])["ideal"]
    for layer, per_size in direct.items():
        for s, v in per_size.items():
            assert res.nested()[layer][s] == pytest.approx(v, rel=1e-12, abs=1e-30)
    frame = res.to_frame()
    assert list(frame.index) == ["id", "pool", "blur", "logits"]
    assert list(frame.columns) == [6, 8, 12, "mean"]
    assert frame.loc["blur", "mean"] == pytest.approx(res.summary)
    assert frame.loc["logits", "mean"] == pytest.approx(res.logit_error)
    text = str(res)
    assert "ideal" in text and "summary" in text and "blur" in text and "16x16" in text


def test_the_fourier_network_is_exact_at_every_size_and_a_cnn_is_not():
    x = fourier_resize(_images(2, b=2, n=56), 28)  # band-limited 28x28 images
    torch.manual_seed(0)
    fourier = methods.create("fourier", config="quick").double()
    res = check_equivariance(fourier, x)
    assert res.sizes == tuple(range(8, 28))  # mnist-res's grid at 28 px
    assert list(res.per_layer) == ["block1", "block2", "block3"]
    for layer, per_size in res.per_layer.items():
        assert set(per_size) == set(range(8, 28))
        assert max(per_size.values()) <= 1e-12, layer
    torch.manual_seed(0)
    cnn = methods.create("cnn", config="quick").double()
    plain = check_equivariance(cnn, x)
    assert plain.summary > 1e-3
    assert min(min(d.values()) for d in plain.per_layer.values()) > 1e-6
    assert cnn.training  # measured in eval mode, left as it was


def test_scale_shift_reports_a_lifted_map_only_on_its_grid():
    g = torch.Generator().manual_seed(4)
    model = DyadicLift(torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64))
    x = _images(4, b=2, n=32)
    res = check_equivariance(model, x, "scale-shift", logits=False)  # a lift: no classifier
    assert res.logits == {} and list(res.nested()) == ["lift"]
    assert 8 in res.sizes and set(range(16, 32)) <= set(res.sizes)  # 32/4 added to the grid
    assert set(res.per_layer["lift"]) == {8, 16}
    assert max(res.per_layer["lift"].values()) < 1e-20 and res.summary < 1e-20
    assert res.left_out == {"lift": {8: 2, 16: 1}}
    assert default_sizes(32) == list(range(16, 32))
    assert default_sizes(97) == list(range(49, 97)) and default_sizes(28) == list(range(8, 28))
    assert default_sizes(32, "scale-shift", scale_axes_of(model)) == [8, *range(16, 32)]
