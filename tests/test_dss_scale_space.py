"""DSS scale-space: Lindeberg's discrete Gaussian and the scale-space lift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleqbench.methods.dss.scale_space import (
    ScaleSpaceLift,
    discrete_gaussian,
    gaussian_blur,
    lift_variances,
)

variances = st.floats(min_value=1e-3, max_value=40.0, allow_nan=False, allow_infinity=False)


def _taps(k: np.ndarray) -> np.ndarray:
    return np.arange(k.size) - k.size // 2


@settings(max_examples=60, deadline=None)
@given(t=variances)
def test_discrete_gaussian_is_a_symmetric_probability_with_variance_t(t):
    k = discrete_gaussian(t)
    n = _taps(k)
    assert k.size % 2 == 1
    assert np.all(k >= 0)
    np.testing.assert_allclose(k, k[::-1], rtol=0, atol=1e-15)
    assert abs(k.sum() - 1.0) < 1e-12
    assert abs((k * n).sum()) < 1e-12
    # truncation at tail mass 1e-10 costs at most ~1e-8 of the variance
    assert abs((k * n ** 2).sum() - t) <= 1e-7 * max(t, 1.0)


def test_discrete_gaussian_matches_the_bessel_definition():
    from scipy.special import iv

    t = 1.3
    k = discrete_gaussian(t)
    n = _taps(k)
    np.testing.assert_allclose(k, np.exp(-t) * iv(np.abs(n), t), rtol=1e-9, atol=1e-15)


def test_discrete_gaussian_zero_variance_is_the_identity_and_bad_input_is_rejected():
    np.testing.assert_array_equal(discrete_gaussian(0.0), [1.0])
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            discrete_gaussian(bad)


def test_discrete_gaussian_differs_from_the_sampled_gaussian_at_small_scales():
    # the reason for Lindeberg's kernel: at t = 0.1875 (MNIST's first lift) the
    # sampled continuous Gaussian has a visibly wrong variance once normalised
    t = 0.1875
    n = np.arange(-6, 7)
    g = np.exp(-n ** 2 / (2 * t))
    g /= g.sum()
    assert abs((g * n ** 2).sum() - t) > 0.05
    k = discrete_gaussian(t)
    assert abs((k * _taps(k) ** 2).sum() - t) < 1e-7


@settings(max_examples=40, deadline=None)
@given(t1=variances, t2=variances)
def test_discrete_gaussian_semigroup(t1, t2):
    """T(t1) * T(t2) = T(t1 + t2): the defining property of a scale-space kernel."""
    conv = np.convolve(discrete_gaussian(t1), discrete_gaussian(t2))
    direct = discrete_gaussian(t1 + t2)
    pad = (conv.size - direct.size) // 2
    if pad >= 0:
        direct = np.pad(direct, pad)
    else:
        conv = np.pad(conv, -pad)
    np.testing.assert_allclose(conv, direct, rtol=0, atol=1e-9)


def test_lift_variances_follow_base_and_zero_scale():
    # total blur zero_scale * base**s, the input carrying zero_scale already
    assert lift_variances(2, 0.25) == pytest.approx([0.0, 0.1875])
    assert lift_variances(4, 0.5) == pytest.approx([0.0, 0.75, 3.75, 15.75])
    for s, t in enumerate(lift_variances(4, 0.5)):
        assert math.sqrt(0.5 ** 2 + t) == pytest.approx(0.5 * 2 ** s)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n_scales=st.integers(2, 4), zero_scale=st.sampled_from([0.25, 0.5]))
def test_lift_is_a_semigroup_along_scale(seed, n_scales, zero_scale):
    """Slice s+1 of the lift is slice s blurred by t_{s+1} - t_s (compactly supported image,
    so zero padding is the infinite plane and the identity holds on every pixel, up to the
    float32 rounding of the lift's stored kernels)."""
    g = torch.Generator().manual_seed(seed)
    margin = 40
    x = torch.zeros(2, 3, 8 + 2 * margin, 8 + 2 * margin, dtype=torch.float64)
    x[..., margin:-margin, margin:-margin] = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    # the tail-mass cut; the default (published) cut keeps the semigroup to ~2e-5 only
    # (tests/test_dss_reference.py)
    lift = ScaleSpaceLift(n_scales, zero_scale, tail=1e-10).double()
    y = lift(x)
    assert y.shape == (2, 3, n_scales, x.shape[-2], x.shape[-1])
    torch.testing.assert_close(y[:, :, 0], x, rtol=0, atol=0)
    ts = lift.variances
    for s in range(n_scales - 1):
        step = torch.from_numpy(discrete_gaussian(ts[s + 1] - ts[s]))
        torch.testing.assert_close(gaussian_blur(y[:, :, s], step), y[:, :, s + 1],
                                   rtol=0, atol=1e-6)


def test_lift_preserves_mass_and_keeps_channels_apart():
    x = torch.zeros(1, 2, 41, 41, dtype=torch.float64)
    x[0, 0, 20, 20] = 1.0
    y = ScaleSpaceLift(3, 0.5).double()(x)
    assert torch.allclose(y[0, 0].sum((-2, -1)), torch.ones(3, dtype=torch.float64))
    assert torch.count_nonzero(y[0, 1]) == 0


def test_published_half_width_cut():
    """The reference code's cut: taps -4 ceil(sqrt t)..4 ceil(sqrt t) of exp(-t) I_n(t),
    renormalised; the default of the lift."""
    from scipy.special import iv

    from scaleqbench.methods.dss.scale_space import published_half_width

    assert [published_half_width(t) for t in (0.1875, 0.75, 3.75, 15.75)] == [4, 4, 8, 16]
    t = 3.75
    k = discrete_gaussian(t, half_width=8)
    n = np.arange(-8, 9)
    ref = np.exp(-t) * iv(np.abs(n), t)
    np.testing.assert_allclose(k, ref / ref.sum(), rtol=1e-12)
    lift = ScaleSpaceLift(4, 0.5)
    assert [lift.kernel(s).numel() for s in range(4)] == [1, 9, 17, 33]
    with pytest.raises(ValueError):
        discrete_gaussian(1.0, half_width=-1)
