"""Localized spectral convolution: a kernel defined on a fixed global grid, applied per frequency.

Complex weights ``L`` of shape ``(C_in, C_out, N, N)`` are an ``N x N`` kernel on
a global ``G x G`` grid; its DFT ``W[k] = sum_t L[t] exp(-2 pi i k.t / G)`` is
taken for ``|k|_inf < G/2`` and the layer multiplies ``x^[k] W[k]`` summed over
input channels, for every frequency the input holds (those ``>= G/2`` get no
spectral term). A parallel real ``1 x 1`` channel mixing (and a bias on the
constant) is added. Because ``W[k]`` does not depend on the input size, the
layer commutes with the anti-aliased scaling ``D_s`` exactly.

Real-valued output: the input is real, so only the half spectrum ``k_x >= 0`` is
computed (as ``rfft2``/``irfft2`` would; the layer works on real spectra, see
:meth:`SpectralConv2d.spectral_forward`). The implied conjugate-symmetric completion makes
the effective real filter ``Re L + H_x Im L`` (``H_x`` the Hilbert transform
along x, zero on the ``k_x = 0`` column), the same convention as FNO and the
authors' code; both halves of every weight are used.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from scalebench.methods.fourier.basis import (
    band_to_real,
    map_spectrum,
    real_to_band,
    ring_count,
    spectrum_map,
)

__all__ = ["SpectralConv2d"]


@functools.lru_cache(maxsize=256)
def _dft_rows(grid: int, kernel: int, kmax: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    # rows k = 0..kmax, then -kmax..-1 (FFT order of the kept band); columns: taps centred on 0
    k = torch.cat([torch.arange(0, kmax + 1), torch.arange(-kmax, 0)]).double()
    t = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) // 2
    return torch.exp(-2j * math.pi * k[:, None] * t[None, :] / grid).to(dtype=dtype, device=device)


class SpectralConv2d(nn.Module):
    """Localized spectral convolution with a parallel 1x1 channel mixing.

    Equivariant to: discrete anti-aliased scaling ``D_s`` for every input size
    (``f(D_s x) = D_s f(x)``, the output keeps the input's size and band) and to
    cyclic integer translations. Input ``(B, C_in, n, n)``, output
    ``(B, C_out, n, n)``, band-limited (an even size gets no Nyquist ring, whatever
    the input held).
    """

    def __init__(self, in_channels: int, out_channels: int, global_grid: int, kernel_size: int,
                 pointwise: bool = True, bias: bool = True, spectral: bool = True):
        super().__init__()
        if kernel_size > global_grid:
            raise ValueError(f"kernel {kernel_size} does not fit the global grid {global_grid}")
        if not (spectral or pointwise):
            raise ValueError("a SpectralConv2d needs a spectral or a pointwise term")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.global_grid, self.kernel_size = global_grid, kernel_size
        self.band = ring_count(global_grid)  # |k| < G/2
        if spectral:
            # taps first, so that its DFT comes out frequency-major (see multiplier); stored as
            # real pairs so that .double() and the optimisers treat it as real
            std = 1.0 / math.sqrt(2 * in_channels * kernel_size ** 2)
            self.spectral_weight = nn.Parameter(
                torch.randn(kernel_size, kernel_size, in_channels, out_channels, 2) * std)
        else:
            self.register_parameter("spectral_weight", None)
        if pointwise:
            self.pointwise = nn.Parameter(torch.randn(in_channels, out_channels)
                                          / math.sqrt((1 + spectral) * in_channels))
        else:
            self.register_parameter("pointwise", None)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, G={self.global_grid}, "
                f"N={self.kernel_size}, spectral={self.spectral_weight is not None}, "
                f"pointwise={self.pointwise is not None}")

    def multiplier(self, kmax: int, cdtype: torch.dtype) -> torch.Tensor:
        """``W[k]``, ``(ky, kx, C_in, C_out)``: ``k_y in [-kmax, kmax]`` (FFT order), ``k_x in [0, kmax]``."""
        real = torch.float64 if cdtype == torch.complex128 else torch.float32
        lw = torch.view_as_complex(self.spectral_weight.to(real))  # (t, s, i, o)
        e = _dft_rows(self.global_grid, self.kernel_size, kmax, cdtype, str(lw.device))
        taps, io = self.kernel_size, self.in_channels * self.out_channels
        # W[y, x] = sum_t E[y, t] sum_s E[x, s] L[t, s]: two GEMMs, frequency-major result
        half = e[:kmax + 1] @ lw.reshape(taps, taps, io)  # (t, kx, io)
        w = e @ half.reshape(taps, -1)  # (ky, kx * io)
        return w.view(2 * kmax + 1, kmax + 1, self.in_channels, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, n, n) -> (B, C_out, n, n)``: :meth:`spectral_forward` between the grid and
        the real spectrum."""
        return spectrum_map(self.spectral_forward(map_spectrum(x)), x.shape[-1])

    def spectral_forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(K, K, B, C_in) -> (K, K, B, C_out)`` on real spectra (:func:`~methods.fourier.basis.map_spectrum`).

        The band's half spectrum (as ``rfft2`` gives it) is mixed per frequency and
        turned back into a real spectrum as ``irfft2`` would (:func:`band_to_real`).
        """
        jmax = (spec.shape[0] - 1) // 2
        kmax = min(jmax, self.band)
        cdtype = torch.complex128 if spec.dtype == torch.float64 else torch.complex64
        band = real_to_band(spec)  # (ky, kx, B, C_in), ky in FFT order
        out = None
        if self.spectral_weight is not None:
            w = self.multiplier(kmax, cdtype)
            if self.pointwise is not None and kmax == jmax:
                # the whole band has a spectral term: fold the 1x1 mixing into it (one product)
                w = w + self.pointwise.to(spec.dtype)
            inner = band if kmax == jmax else self._inner(band, jmax, kmax)
            out = self._mix(inner, w)
            if kmax < jmax:
                out = self._outer(out, jmax, kmax)
        if self.pointwise is not None and (out is None or kmax < jmax):
            flat = band.reshape(-1, self.in_channels) @ self.pointwise.to(cdtype)
            flat = flat.view(*band.shape[:3], self.out_channels)
            out = flat if out is None else out + flat
        y = band_to_real(out)
        if self.bias is not None:  # a constant map: the bias goes to the (0, 0) coefficient
            k = y.shape[0]
            at_mean = torch.zeros(k * k, 1, 1, dtype=y.dtype, device=y.device)
            at_mean[0] = 1.0
            y = y + at_mean.view(k, k, 1, 1) * self.bias.to(y.dtype)
        return y

    @staticmethod
    def _mix(band: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Per frequency, ``(B, C_in) @ (C_in, C_out)`` in complex arithmetic, as real GEMMs.

        Real and imaginary parts of the input are stacked along the batch axis, so
        the complex product is two real batched GEMMs (``re W`` and ``im W``) whose
        operands are contiguous -- complex ``bmm`` on transposed or conjugated views
        (as autograd produces) falls back to a slow per-matrix path on CPU.
        """
        ky, kx, b, ci = band.shape
        f, co = ky * kx, w.shape[-1]
        stacked = torch.view_as_real(band).reshape(f, b, ci, 2).permute(0, 3, 1, 2)
        stacked = stacked.reshape(f, 2 * b, ci)  # rows: real parts, then imaginary parts
        w = w.reshape(f, ci, co)
        p, q = torch.bmm(stacked, w.real.contiguous()), torch.bmm(stacked, w.imag.contiguous())
        # unbind, not slicing: the backward of a slice zero-fills a full-size gradient each time
        p_re, p_im = p.view(f, 2, b, co).unbind(1)
        q_re, q_im = q.view(f, 2, b, co).unbind(1)
        out = torch.complex(p_re - q_im, q_re + p_im)
        return out.view(ky, kx, b, co)

    @staticmethod
    def _inner(band: torch.Tensor, jmax: int, kmax: int) -> torch.Tensor:
        """The sub-band ``|k| <= kmax`` of a band ``|k| <= jmax`` (frequency-major, FFT order)."""
        return torch.cat([band[:kmax + 1, :kmax + 1], band[2 * jmax + 1 - kmax:, :kmax + 1]])

    @staticmethod
    def _outer(inner: torch.Tensor, jmax: int, kmax: int) -> torch.Tensor:
        """Zero-extend a ``|k| <= kmax`` block to the band ``|k| <= jmax`` (frequency-major)."""
        top, bottom = inner[:kmax + 1], inner[kmax + 1:]
        gap = torch.zeros(2 * (jmax - kmax), *inner.shape[1:], dtype=inner.dtype,
                          device=inner.device)
        block = torch.cat([top, gap, bottom])
        return nn.functional.pad(block, (0, 0, 0, 0, 0, jmax - kmax))
