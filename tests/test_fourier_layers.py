"""Fourier layers: real bases, spectral convolution, moments -- the mathematics.

Every layer must commute with the anti-aliased scaling ``D_s`` (``fourier_resize``)
at every size ``s`` in its range, to float64 precision (the ring nonlinearity:
tests/test_fourier_nonlinearity.py; the workspace: tests/test_fourier_workspace.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from fourier_helpers import EXACT, SETTINGS, band_limited, worst_error
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.methods.fourier.basis import (
    band_mean_square,
    band_to_real,
    map_spectrum,
    real_analysis,
    real_synthesis,
    real_to_band,
    ring_count,
    spectrum_map,
)
from scaleqbench.methods.fourier.moments import SpectrumMoments
from scaleqbench.methods.fourier.reference import ring_mask
from scaleqbench.methods.fourier.spectral import KERNEL_FORMS, SpectralConv2d
from scaleqbench.methods.fourier.spectral_mix import SpectralMix


# --- bases ------------------------------------------------------------------------------
@SETTINGS
@given(n=st.integers(3, 40), m=st.integers(3, 40), seed=st.integers(0, 2**16))
def test_real_bases_reproduce_fourier_resize(n, m, seed):
    x = band_limited((2,), n, seed)
    k = ring_count(min(n, m))
    a, s = real_analysis(n, k), real_synthesis(m, k)
    assert torch.allclose(s @ a @ x @ a.T @ s.T, fourier_resize(x, m), atol=1e-12)


def fft_band(x: torch.Tensor) -> torch.Tensor:
    """The ``|k| <= J(n)``, ``k_x >= 0`` half of ``rfft2`` as ``(ky, kx, ...)``, ``ky`` in FFT order."""
    n = x.shape[-1]
    j = ring_count(n)
    f = torch.fft.rfft2(x, norm="forward")
    return torch.cat([f[..., :j + 1, :j + 1], f[..., n - j:, :j + 1]], dim=-2).permute(2, 3, 0, 1)


@SETTINGS
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_map_spectrum_and_real_to_band_are_the_dft_of_the_map(n, seed):
    """The trunk's representation: synthesis inverts analysis on band-limited maps, and the
    real spectrum carries exactly the rfft2 coefficients of the band (odd and even sizes)."""
    x = band_limited((2, 3), n, seed)
    spec = map_spectrum(x)
    assert spec.shape == (2 * ring_count(n) + 1,) * 2 + (2, 3)
    assert torch.allclose(spectrum_map(spec, n), x, atol=1e-12)
    assert torch.allclose(real_to_band(spec), fft_band(x), atol=1e-14)


@SETTINGS
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_band_to_real_is_irfft2_of_any_half_spectrum(n, seed):
    """Including half spectra that are not Hermitian on the k_x = 0 column (irfft2 keeps the
    real part there after the inverse DFT over k_y): what the spectral conv produces."""
    j = ring_count(n)
    g = torch.Generator().manual_seed(seed)
    band = torch.randn(2 * j + 1, j + 1, 2, dtype=torch.complex128, generator=g)
    full = torch.zeros(2, n, n // 2 + 1, dtype=torch.complex128)
    full[:, :j + 1, :j + 1] = band[:j + 1].permute(2, 0, 1)
    full[:, n - j:, :j + 1] = band[j + 1:].permute(2, 0, 1)
    want = torch.fft.irfft2(full, s=(n, n), norm="forward")
    got = spectrum_map(band_to_real(band)[..., None], n)[:, 0]
    assert torch.allclose(got, want, atol=1e-12)
    hermitian = fft_band(want[:, None])
    assert torch.allclose(real_to_band(band_to_real(hermitian)), hermitian, atol=1e-13)


@pytest.mark.parametrize("m", [1, 2, 7, 8, 27, 28])
def test_real_analysis_inverts_synthesis(m):
    k = ring_count(m)
    assert torch.allclose(real_analysis(m, k) @ real_synthesis(m, k),
                          torch.eye(2 * k + 1, dtype=torch.float64), atol=1e-12)


@given(st.integers(1, 12), st.integers(0, 8), st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_band_mean_square_is_parseval_on_every_resolving_grid(band, extra, seed):
    """The grid moments of the fast nonlinearity and the head's RMS rest on this: the mean
    square of a band-limited map, odd or even grid, from its coefficients alone."""
    g = 2 * band + 1 + extra
    x = torch.randn(2 * band + 1, 2 * band + 1, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    s = real_synthesis(g, band)
    grid = s @ x @ s.T
    w = band_mean_square([band], 2 * band + 5)[0, :2 * band + 1]
    assert torch.allclose((x.square() * w[:, None] * w[None, :]).sum(), grid.square().mean(),
                          rtol=1e-12)
    assert band_mean_square([band], 2 * band + 5)[0, 2 * band + 1:].abs().sum() == 0


def test_analysis_refuses_unresolvable_frequencies():
    with pytest.raises(ValueError):
        real_analysis(8, 4)


# --- spectral convolution -----------------------------------------------------------------
@SETTINGS
@given(grid=st.integers(8, 32), kernel=st.sampled_from([1, 3, 5]), n=st.integers(8, 40),
       pointwise=st.booleans(), form=st.sampled_from(KERNEL_FORMS), seed=st.integers(0, 2**16))
def test_spectral_conv_commutes_with_scaling_at_every_size(grid, kernel, n, pointwise, form,
                                                          seed):
    torch.manual_seed(seed)
    conv = SpectralConv2d(2, 3, grid, kernel, pointwise=pointwise, kernel_form=form).double()
    x = band_limited((2, 2), n, seed)
    assert worst_error(conv, x, range(3, n)) <= EXACT


def test_the_default_kernel_is_real_and_counts_its_taps_once():
    conv = SpectralConv2d(3, 4, 28, 5)
    assert conv.kernel_form == "real" and conv.spectral_weight.shape == (5, 5, 3, 4)
    hilbert = SpectralConv2d(3, 4, 28, 5, kernel_form="hilbert")
    assert hilbert.spectral_weight.shape == (5, 5, 3, 4, 2)
    with pytest.raises(ValueError, match="kernel_form"):
        SpectralConv2d(3, 4, 28, 5, kernel_form="complex")


def test_spectral_conv_is_circular_convolution_with_its_taps_at_the_global_size():
    torch.manual_seed(0)
    g = 27
    conv = SpectralConv2d(1, 1, g, 5, pointwise=False, bias=False).double()
    x = band_limited((1, 1), g, 1)
    k = conv.spectral_weight[:, :, 0, 0].detach()
    want = sum(k[a, b] * torch.roll(x, shifts=(a - 2, b - 2), dims=(-2, -1))
               for a in range(5) for b in range(5))
    assert torch.allclose(conv(x), want, atol=1e-12)


def effective_multiplier(conv: SpectralConv2d, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The filter a one-channel layer applies at input size ``n``: its frequency response
    ``M[k]`` on the band ``|k|_inf <= min(J(n), J(G))`` (from its impulse response), and
    those frequencies ``k`` as ``(F, 2)`` integers."""
    delta = torch.zeros(1, 1, n, n, dtype=torch.float64)
    delta[..., 0, 0] = 1.0
    with torch.no_grad():
        response = torch.fft.fft2(conv(delta)[0, 0], norm="backward")
    j = min(ring_count(n), conv.band)
    f = torch.arange(-j, j + 1)
    ky, kx = torch.meshgrid(f, f, indexing="ij")
    return response[ky % n, kx % n].flatten(), torch.stack([ky.flatten(), kx.flatten()], 1)


def energy_outside_taps(conv: SpectralConv2d, n: int) -> float:
    """The fraction of the filter's energy at size ``n`` that no kernel on the layer's taps
    (centred offsets on the global grid) can give: ``M[k]`` projected onto the span of
    ``exp(-2 pi i k.t / G)`` over the taps ``t``, the residual's share of ``|M|^2``."""
    m, k = effective_multiplier(conv, n)
    t1 = torch.arange(conv.kernel_size) - (conv.kernel_size - 1) // 2
    ty, tx = torch.meshgrid(t1, t1, indexing="ij")
    taps = torch.stack([ty.flatten(), tx.flatten()], 1).double()
    a = torch.exp(-2j * math.pi * (k.double() @ taps.T) / conv.global_grid)
    fit = a @ torch.linalg.lstsq(a, m[:, None].to(a.dtype)).solution
    return ((fit[:, 0] - m).abs().square().sum() / m.abs().square().sum()).item()


@SETTINGS
@given(grid=st.integers(8, 40), kernel=st.sampled_from([3, 5, 7]), seed=st.integers(0, 2**16))
def test_the_filter_has_no_energy_outside_its_taps_at_every_size(grid, kernel, seed):
    """The paper's localized kernel: at every input size the layer applies the N x N kernel
    on the global grid's taps (band-limited to the input), nothing outside them; and at an
    odd global size its impulse response there is the kernel itself, zero off the taps."""
    torch.manual_seed(seed)
    kernel = min(kernel, grid)
    conv = SpectralConv2d(1, 1, grid, kernel, pointwise=False, bias=False).double()
    sizes = [n for n in range(3, grid + 8) if 2 * min(ring_count(n), conv.band) + 1 >= kernel]
    assert max(energy_outside_taps(conv, n) for n in sizes) < 1e-24
    g = grid | 1  # the impulse response on an odd global grid
    conv = SpectralConv2d(1, 1, g, kernel, pointwise=False, bias=False).double()
    delta = torch.zeros(1, 1, g, g, dtype=torch.float64)
    delta[..., 0, 0] = 1.0
    with torch.no_grad():
        h = torch.roll(conv(delta)[0, 0], ((kernel - 1) // 2,) * 2, (0, 1))
    assert torch.allclose(h[:kernel, :kernel], conv.spectral_weight[:, :, 0, 0].detach(),
                          atol=1e-14)
    h[:kernel, :kernel] = 0
    assert h.square().sum() < 1e-26


def test_the_hilbert_form_is_not_localized():
    """The option ``kernel_form="hilbert"``: its imaginary taps act as ``H_x Im L``, whose
    response is not that of any kernel on the taps (about an eighth of the filter's energy
    lies outside them)."""
    torch.manual_seed(0)
    conv = SpectralConv2d(1, 1, 27, 5, pointwise=False, bias=False, kernel_form="hilbert")
    conv = conv.double()
    outside = [energy_outside_taps(conv, n) for n in (9, 16, 27)]
    assert min(outside) > 0.02
    with torch.no_grad():
        conv.spectral_weight[..., 1] = 0  # real taps only: localized again
    assert max(energy_outside_taps(conv, n) for n in (9, 16, 27)) < 1e-24


@pytest.mark.parametrize("form", KERNEL_FORMS)
def test_spectral_conv_weight_gradients_match_finite_differences(form):
    """The kernel's gradient through its DFT (the real form's through the complex cast)."""
    torch.manual_seed(0)
    conv = SpectralConv2d(2, 2, 9, 3, kernel_form=form).double()
    x = band_limited((1, 2), 7, 3)
    w = conv.spectral_weight.detach().clone().requires_grad_()

    def f(weight):
        return torch.func.functional_call(conv, {"spectral_weight": weight}, (x,))

    assert torch.autograd.gradcheck(f, (w,))


def test_spectral_conv_drops_the_nyquist_ring_and_frequencies_above_the_grid():
    torch.manual_seed(0)
    conv = SpectralConv2d(1, 1, 8, 3, pointwise=False, bias=False).double()
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)  # not band-limited: has a Nyquist ring
    spec = torch.fft.fft2(conv(x), norm="forward")
    assert spec[..., ~ring_mask(16, 0, ring_count(8))].abs().max() < 1e-12


def test_pointwise_only_is_a_1x1_conv_on_band_limited_input():
    torch.manual_seed(0)
    conv = SpectralConv2d(3, 4, 8, 1, spectral=False, bias=True).double()
    with torch.no_grad():
        conv.bias.normal_()
    x = band_limited((2, 3), 15, 2)
    want = torch.einsum("bihw,io->bohw", x, conv.pointwise) + conv.bias[:, None, None]
    assert torch.allclose(conv(x), want, atol=1e-12)


@pytest.mark.parametrize("grid, kernel, k, pointwise, spectral", [
    (8, 3, 7, True, True),  # every frequency has a spectral term (1x1 folded in)
    (8, 3, 11, True, True),  # frequencies above the grid: the 1x1 mixing alone
    (8, 3, 11, False, True),  # ... or nothing
    (8, 1, 9, True, False),  # 1x1 only
    (4, 1, 1, True, True),  # the constant alone
])
def test_spectral_mix_gradients_match_finite_differences(grid, kernel, k, pointwise, spectral):
    """The hand-written backward of the real-basis mixing (row pairs in chunks of one)."""
    torch.manual_seed(0)
    conv = SpectralConv2d(2, 3, grid, kernel, pointwise=pointwise, spectral=spectral).double()
    x = torch.randn(k, k, 2, 2, dtype=torch.float64, requires_grad=True)
    w = (conv.multiplier(min(conv.band, (k - 1) // 2), torch.complex128).detach()
         .requires_grad_() if spectral else None)
    args = (x, w, conv.pointwise, torch.randn(3, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(lambda *a: SpectralMix.apply(*a, None, 1), args)


def test_spectrum_moments_gradients_match_finite_differences():
    spec = torch.randn(7, 7, 5, dtype=torch.float64, requires_grad=True)
    q = band_mean_square([0, 2, 3], 7)
    assert torch.autograd.gradcheck(lambda s: SpectrumMoments.apply(s, q, None, 60), (spec,))
    mean, ms = SpectrumMoments.apply(spec, q, None)
    grid = spectrum_map(spec.detach()[..., None], 7)[:, 0]  # (5, 7, 7)
    assert torch.allclose(mean, grid.mean((-2, -1)))
    assert torch.allclose(ms[2], grid.square().mean((-2, -1)))
