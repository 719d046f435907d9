"""The scaling operators: fourier_resize is the ideal low-pass, canvas_rescale zooms on a canvas."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleqbench.datasets.scaling import canvas_rescale, fourier_resize, fourier_resize_fft

sizes = st.integers(min_value=4, max_value=64)
SETTINGS = settings(max_examples=40, deadline=None)


def rand(n: int, seed: int, lead=(2, 3)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, n, n, generator=g, dtype=torch.float64)


def spectrum(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftshift(torch.fft.fft2(x, norm="forward"), dim=(-2, -1))


@SETTINGS
@given(n=sizes, m=sizes, seed=st.integers(0, 2**16))
def test_matches_the_fft_definition(n, m, seed):
    x = rand(n, seed)
    assert torch.allclose(fourier_resize(x, m), fourier_resize_fft(x, m), atol=1e-12)


@SETTINGS
@given(n=sizes.filter(lambda v: v % 2 == 1), seed=st.integers(0, 2**16))
def test_identity_at_the_same_odd_size(n, seed):
    x = rand(n, seed)
    assert torch.allclose(fourier_resize(x, n), x, atol=1e-12)


@SETTINGS
@given(n=sizes.filter(lambda v: v % 2 == 0), seed=st.integers(0, 2**16))
def test_same_even_size_removes_exactly_the_nyquist_ring(n, seed):
    x = rand(n, seed)
    y = fourier_resize(x, n)
    X, Y = torch.fft.fft2(x, norm="forward"), torch.fft.fft2(y, norm="forward")
    k = torch.fft.fftfreq(n, 1 / n).abs()
    nyq = (k[:, None] == n // 2) | (k[None, :] == n // 2)
    assert torch.allclose(Y[..., ~nyq], X[..., ~nyq], atol=1e-12)
    assert Y[..., nyq].abs().max() < 1e-12
    assert X[..., nyq].abs().max() > 1e-3  # the ring was there to remove


@SETTINGS
@given(n=sizes, a=sizes, b=sizes, seed=st.integers(0, 2**16))
def test_semigroup_a_then_b_equals_b(n, a, b, seed):
    a, b = max(a, b), min(a, b)
    x = rand(n, seed)
    assert torch.allclose(fourier_resize(fourier_resize(x, a), b), fourier_resize(x, b),
                          atol=1e-10)


@SETTINGS
@given(n=sizes, m=sizes, seed=st.integers(0, 2**16))
def test_down_then_up_is_the_ideal_low_pass(n, m, seed):
    m = min(m, n)
    x = rand(n, seed)
    y = fourier_resize(fourier_resize(x, m), n)
    k = torch.fft.fftfreq(n, 1 / n).abs()
    keep = (k[:, None] < m / 2) & (k[None, :] < m / 2) & (k[:, None] < n / 2) & (k[None, :] < n / 2)
    expected = torch.fft.ifft2(torch.fft.fft2(x, norm="forward") * keep, norm="forward").real
    assert torch.allclose(y, expected, atol=1e-12)


@SETTINGS
@given(n=sizes, m=sizes, c=st.floats(-5, 5, allow_nan=False))
def test_amplitude_of_a_constant_image_is_preserved(n, m, c):
    x = torch.full((1, n, n), c, dtype=torch.float64)
    assert torch.allclose(fourier_resize(x, m), torch.full((1, m, m), c, dtype=torch.float64),
                          atol=1e-12)


@SETTINGS
@given(n=sizes, m=sizes, seed=st.integers(0, 2**16))
def test_up_sampling_keeps_every_coefficient(n, m, seed):
    n, m = min(n, m), max(n, m)
    x = fourier_resize(rand(n, seed), n)  # band-limit (drops an even size's Nyquist ring)
    up = fourier_resize(x, m)
    assert torch.allclose(fourier_resize(up, n), x, atol=1e-12)


def test_leading_dims_float32_and_gradients():
    x = torch.randn(2, 3, 4, 20, 20, requires_grad=True)
    y = fourier_resize(x, 13)
    assert y.shape == (2, 3, 4, 13, 13) and y.dtype == torch.float32
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_sizes_are_rejected(bad):
    with pytest.raises(ValueError, match="positive integer"):
        fourier_resize(torch.zeros(1, 8, 8), bad)


def test_non_square_input_is_rejected():
    with pytest.raises(ValueError, match="square"):
        fourier_resize(torch.zeros(1, 8, 9), 4)


def _bbox(img: torch.Tensor, thr: float = 0.3) -> tuple[int, int]:
    rows = (img > thr).any(1).nonzero().flatten()
    cols = (img > thr).any(0).nonzero().flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def test_canvas_rescale_factor_one_is_the_identity():
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(canvas_rescale(x, 1.0), x)


@SETTINGS
@given(factor=st.floats(0.3, 1.0), h=st.integers(10, 20), w=st.integers(10, 20))
def test_canvas_rescale_shrinks_the_bounding_box_by_the_factor(factor, h, w):
    n = 28
    x = torch.zeros(1, 1, n, n)
    top, left = (n - h) // 2, (n - w) // 2
    x[..., top:top + h, left:left + w] = 1.0
    y = canvas_rescale(x, factor)[0, 0]
    bh, bw = _bbox(y, thr=0.5)
    assert abs(bh - h * factor) <= 1.5 and abs(bw - w * factor) <= 1.5
    # zoom about the centre: the box stays centred within a pixel
    rows = (y > 0.5).any(1).nonzero().flatten().double()
    assert abs((rows[0] + rows[-1]) / 2 - (n - 1) / 2) <= 1.0


def test_canvas_rescale_per_sample_factors_and_zero_fill():
    x = torch.ones(3, 1, 28, 28)
    y = canvas_rescale(x, torch.tensor([0.5, 1.0, 2.0]))
    assert y[0, 0, 0, 0] == 0 and math.isclose(float(y[0, 0, 14, 14]), 1.0, abs_tol=1e-5)
    assert torch.equal(y[1], x[1])
    assert torch.allclose(y[2], x[2], atol=1e-5)  # enlarging a constant keeps it constant
