"""Localized spectral convolution: a kernel defined on a fixed global grid, applied per frequency.

Complex weights ``L`` of shape ``(C_in, C_out, N, N)`` are an ``N x N`` kernel on
a global ``G x G`` grid; its DFT ``W[k] = sum_t L[t] exp(-2 pi i k.t / G)`` is
taken for ``|k|_inf < G/2`` and the layer multiplies ``x^[k] W[k]`` summed over
input channels, for every frequency the input holds (those ``>= G/2`` get no
spectral term). A parallel real ``1 x 1`` channel mixing (and a bias on the
constant) is added. Because ``W[k]`` does not depend on the input size, the
layer commutes with the anti-aliased scaling ``D_s`` exactly.

Real-valued output: the input is real, so only the half spectrum ``k_x >= 0`` is
computed (``rfft2``/``irfft2``). The implied conjugate-symmetric completion makes
the effective real filter ``Re L + H_x Im L`` (``H_x`` the Hilbert transform
along x, zero on the ``k_x = 0`` column), the same convention as FNO and the
authors' code; both halves of every weight are used.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from methods.fourier.basis import ring_count

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
            # stored as real pairs so that .double() and optimisers treat it as real
            std = 1.0 / math.sqrt(2 * in_channels * kernel_size ** 2)
            self.spectral_weight = nn.Parameter(
                torch.randn(in_channels, out_channels, kernel_size, kernel_size, 2) * std)
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
        """``W[k]`` for the half band ``k_y in [-kmax, kmax]`` (FFT order), ``k_x in [0, kmax]``."""
        lw = torch.view_as_complex(self.spectral_weight.to(
            torch.float64 if cdtype == torch.complex128 else torch.float32))
        e = _dft_rows(self.global_grid, self.kernel_size, kmax, cdtype, str(lw.device))
        # W = E L E_x^T over the two tap axes; E_x keeps only k_x >= 0
        return torch.einsum("yt,iots,xs->ioyx", e, lw, e[:kmax + 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        jmax = ring_count(n)
        kmax = min(jmax, self.band)
        cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        spec = torch.fft.rfft2(x, norm="forward")
        # the band |k| <= jmax in FFT order: rows 0..J and n-J..n-1, columns 0..J
        kept = torch.cat([spec[..., :jmax + 1, :jmax + 1], spec[..., n - jmax:, :jmax + 1]], dim=-2)
        if self.spectral_weight is None:
            out = torch.einsum("bixy,io->boxy", kept, self.pointwise.to(cdtype))
        else:
            w = self.multiplier(kmax, cdtype)
            if self.pointwise is not None and kmax == jmax:
                # the whole band has a spectral term: fold the 1x1 mixing into it (one product)
                out = torch.einsum("bixy,ioxy->boxy", kept,
                                   w + self.pointwise.to(x.dtype)[:, :, None, None])
            elif kmax == jmax:
                out = torch.einsum("bixy,ioxy->boxy", kept, w)
            else:
                inner = self._inner(kept, jmax, kmax)
                out = self._outer(torch.einsum("bixy,ioxy->boxy", inner, w), jmax, kmax)
                if self.pointwise is not None:
                    out = out + torch.einsum("bixy,io->boxy", kept, self.pointwise.to(cdtype))
        # back to the rfft layout of an n x n map: zero rows between the halves (and Nyquist)
        top, bottom = out[..., :jmax + 1, :], out[..., jmax + 1:, :]
        gap = torch.zeros(*out.shape[:-2], n - 2 * jmax - 1, jmax + 1, dtype=out.dtype,
                          device=out.device)
        full = torch.cat([top, gap, bottom], dim=-2)
        full = nn.functional.pad(full, (0, n // 2 + 1 - (jmax + 1)))
        y = torch.fft.irfft2(full, s=(n, n), norm="forward")
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)[:, None, None]
        return y

    @staticmethod
    def _inner(kept: torch.Tensor, jmax: int, kmax: int) -> torch.Tensor:
        """The sub-band ``|k| <= kmax`` of a band ``|k| <= jmax`` (both FFT order, half plane)."""
        return torch.cat([kept[..., :kmax + 1, :kmax + 1],
                          kept[..., 2 * jmax + 1 - kmax:, :kmax + 1]], dim=-2)

    @staticmethod
    def _outer(inner: torch.Tensor, jmax: int, kmax: int) -> torch.Tensor:
        """Zero-extend a ``|k| <= kmax`` block to the band ``|k| <= jmax`` (FFT order)."""
        top, bottom = inner[..., :kmax + 1, :], inner[..., kmax + 1:, :]
        gap = torch.zeros(*inner.shape[:-2], 2 * (jmax - kmax), kmax + 1, dtype=inner.dtype,
                          device=inner.device)
        block = torch.cat([top, gap, bottom], dim=-2)
        return nn.functional.pad(block, (0, jmax - kmax))
