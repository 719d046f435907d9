"""Localized spectral convolution: an ``N x N`` kernel on a global grid, applied per frequency.

The kernel is real: weights ``L`` of shape ``(N, N, C_in, C_out)`` are taps at the
centred offsets ``-(N-1)//2 .. N//2`` of a global ``G x G`` grid. Its DFT
``W[k] = sum_t L[t] exp(-2 pi i k.t / G)`` is taken for ``|k|_inf < G/2`` and the
layer multiplies ``x^[k] W[k]`` summed over input channels, for every frequency
the input holds (those ``>= G/2`` get no spectral term). A parallel real ``1 x 1``
channel mixing (and a bias on the constant) is added. Because ``W[k]`` does not
depend on the input size, the layer commutes with the anti-aliased scaling ``D_s``
exactly; because ``L`` is real, ``W`` is Hermitian and the filter the layer applies
at every input size is the ``N x N`` kernel itself, band-limited to the input's band:
nothing of it lies outside the taps (the paper's localized kernel; tested in
tests/test_fourier_layers.py at every size).

Real-valued output: the input is real, so only the half spectrum ``k_x >= 0`` is
computed (as ``rfft2``/``irfft2`` would; the layer works on real spectra, see
:meth:`SpectralConv2d.spectral_forward`); with a Hermitian ``W`` the implied
conjugate-symmetric completion is the full-spectrum product.

``kernel_form="hilbert"`` (an option, never a default) keeps complex taps ``L`` of
shape ``(N, N, C_in, C_out, 2)``: the completion then makes the effective real filter
``Re L + H_x Im L`` (``H_x`` the Hilbert transform along x, zero on the ``k_x = 0``
column), FNO's convention. Both halves are live, but ``H_x Im L`` is not localized:
its impulse response spreads beyond the taps (about half of the filter's energy lies
in it, and an eighth of the filter's energy outside the taps).

Against the authors' code (``SpectralConv2dLocalized`` + ``ComplexConv2d``; tested in
tests/test_fourier_reference.py): their weight stands for a complex kernel ``K`` on taps
``0 .. N-1`` and they multiply the full spectrum, the next layer reading the real part.
With ``L = Re K`` the layers agree to float32 precision at odd sizes, once these
departures are accounted for:

* their taps are ``0 .. N-1``, ours centred: their output is ours translated by
  ``(N-1)/2`` pixels of the global grid, ``(N-1) n / (2G)`` pixels at size ``n`` (a
  sub-pixel, size-dependent shift); ours keeps a centred feature centred;
* their filter is ``Re K``: ``Im K`` is inert at odd sizes and at ``n = G``, but at an
  even size ``n != G`` it acts through their Nyquist ring (``k = -n/2``), which ours does
  not have. The paper counts the complex weights twice (its 1.08 M parameters for the
  MNIST model); ours counts the ``N^2 C_in C_out`` real taps once per layer, the
  function with the inert half left out;
* their 1x1 term is complex, but on a Hermitian spectrum (a real input) its imaginary
  weights only add an imaginary map, which their next layer discards: ours is the real
  1x1, the same function with half the parameters (18,480 fewer in the MNIST model);
* at an even size their output keeps the Nyquist ring (``k = -n/2``), which is not scale
  equivariant; ours is band-limited to ``|k| < n/2``.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from scaleqbench.methods.fourier import mix_native, native
from scaleqbench.methods.fourier.basis import map_spectrum, ring_count, spectrum_map
from scaleqbench.methods.fourier.chunking import chunk_budget
from scaleqbench.methods.fourier.nonlinearity import IMPLS, runs_kernel
from scaleqbench.methods.fourier.spectral_mix import SpectralMix
from scaleqbench.methods.fourier.workspace import Workspace

__all__ = ["KERNEL_FORMS", "SpectralConv2d"]

#: the kernel parameterisations: ``real`` (the paper's localized kernel, the default) and
#: ``hilbert`` (complex taps, ``Re L + H_x Im L``: not localized; see the module docstring)
KERNEL_FORMS = ("real", "hilbert")


@functools.lru_cache(maxsize=256)
def _dft_rows(grid: int, kernel: int, kmax: int, half: bool, dtype: torch.dtype,
              device: str) -> torch.Tensor:
    """``exp(-2 pi i k t / G)``, columns the taps ``t`` centred on 0; rows ``k = 0 .. kmax``
    (``half``), else ``0, +1, -1, +2, -2, ..., -kmax``: the real spectrum's row order (row
    ``r`` is frequency ``(r + 1) // 2``, its cosine for odd ``r``, its sine for even ``r``)."""
    if half:
        k = torch.arange(kmax + 1).double()
    else:
        r = torch.arange(2 * kmax + 1)
        k = ((r + 1) // 2 * torch.where(r % 2 == 1, 1, -1)).double()
    t = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) // 2
    return torch.exp(-2j * math.pi * k[:, None] * t[None, :] / grid).to(dtype=dtype, device=device)


class SpectralConv2d(nn.Module):
    """Localized spectral convolution with a parallel 1x1 channel mixing.

    Equivariant to: discrete anti-aliased scaling ``D_s`` for every input size
    (``f(D_s x) = D_s f(x)``, the output keeps the input's size and band) and to
    cyclic integer translations. Input ``(B, C_in, n, n)``, output
    ``(B, C_out, n, n)``, band-limited (an even size gets no Nyquist ring, whatever
    the input held). ``kernel_form``: ``"real"`` (default; the localized ``N x N`` kernel)
    or ``"hilbert"`` (complex taps; see the module docstring). ``impl``
    (:data:`~methods.fourier.nonlinearity.IMPLS`): how the band's mixing is computed, by
    the CPU kernel (:mod:`methods.fourier.mix_native`) or by tensor operations, the same
    function (``reference`` computes it by tensor operations).
    """

    def __init__(self, in_channels: int, out_channels: int, global_grid: int, kernel_size: int,
                 pointwise: bool = True, bias: bool = True, spectral: bool = True,
                 kernel_form: str = "real", impl: str = "fast"):
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        if kernel_size > global_grid:
            raise ValueError(f"kernel {kernel_size} does not fit the global grid {global_grid}")
        if not (spectral or pointwise):
            raise ValueError("a SpectralConv2d needs a spectral or a pointwise term")
        if kernel_form not in KERNEL_FORMS:
            raise ValueError(f"kernel_form must be one of {', '.join(KERNEL_FORMS)}, "
                             f"got {kernel_form!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.global_grid, self.kernel_size = global_grid, kernel_size
        self.kernel_form, self.impl = kernel_form, impl
        self.band = ring_count(global_grid)  # |k| < G/2
        if spectral:
            # taps first, so that its DFT comes out frequency-major (see multiplier); the
            # Hilbert form's complex taps are stored as real pairs, so that .double() and the
            # optimisers treat them as real. Either form's effective real filter has variance
            # 1 / (C_in N^2) per tap (the Hilbert form's in its two halves together).
            parts = (2,) if kernel_form == "hilbert" else ()
            std = 1.0 / math.sqrt(len(parts) + 1) / math.sqrt(in_channels * kernel_size ** 2)
            self.spectral_weight = nn.Parameter(
                torch.randn(kernel_size, kernel_size, in_channels, out_channels, *parts) * std)
        else:
            self.register_parameter("spectral_weight", None)
        if pointwise:
            self.pointwise = nn.Parameter(torch.randn(in_channels, out_channels)
                                          / math.sqrt((1 + spectral) * in_channels))
        else:
            self.register_parameter("pointwise", None)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        #: where the output and the input gradient come from (FourierNet shares one pool)
        self.workspace: Workspace | None = Workspace()

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, G={self.global_grid}, "
                f"N={self.kernel_size}, spectral={self.spectral_weight is not None}, "
                f"kernel_form={self.kernel_form}, "
                f"pointwise={self.pointwise is not None}, impl={self.impl}")

    def multiplier(self, kmax: int, cdtype: torch.dtype) -> torch.Tensor:
        """``W[k]``, ``(ky, kx, C_in, C_out)``: ``k_y = 0, +1, -1, ..., +kmax, -kmax`` (the real
        spectrum's row order, see :mod:`methods.fourier.spectral_mix`), ``k_x in [0, kmax]``."""
        real = torch.float64 if cdtype == torch.complex128 else torch.float32
        w = self.spectral_weight.to(real)  # (t, s, i, o), the Hilbert form's with a last (re, im)
        lw = torch.view_as_complex(w) if self.kernel_form == "hilbert" else w.to(cdtype)
        dev = str(lw.device)
        e = _dft_rows(self.global_grid, self.kernel_size, kmax, False, cdtype, dev)
        ex = _dft_rows(self.global_grid, self.kernel_size, kmax, True, cdtype, dev)
        taps, io = self.kernel_size, self.in_channels * self.out_channels
        # W[y, x] = sum_t E[y, t] sum_s E[x, s] L[t, s]: two GEMMs, frequency-major result
        half = ex @ lw.reshape(taps, taps, io)  # (t, kx, io)
        w = e @ half.reshape(taps, -1)  # (ky, kx * io)
        return w.view(2 * kmax + 1, kmax + 1, self.in_channels, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, n, n) -> (B, C_out, n, n)``: :meth:`spectral_forward` between the grid and
        the real spectrum."""
        return spectrum_map(self.spectral_forward(map_spectrum(x)), x.shape[-1])

    def spectral_forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(K, K, B, C_in) -> (K, K, B, C_out)`` on real spectra (:func:`~methods.fourier.basis.map_spectrum`).

        The band's half spectrum (as ``rfft2`` gives it) is mixed per frequency and turned
        back into a real spectrum as ``irfft2`` would, without leaving the real basis
        (:class:`~methods.fourier.spectral_mix.SpectralMix`); the output comes from the
        layer's :attr:`workspace`.
        """
        kmax = min((spec.shape[0] - 1) // 2, self.band)
        cdtype = torch.complex128 if spec.dtype == torch.float64 else torch.complex64
        w = self.multiplier(kmax, cdtype) if self.spectral_weight is not None else None
        pw = self.pointwise.to(spec.dtype) if self.pointwise is not None else None
        bias = self.bias.to(spec.dtype) if self.bias is not None else None
        return SpectralMix.apply(spec, w, pw, bias, self.workspace, chunk_budget(spec.device),
                                 self._runs_kernel(spec))

    def implementation(self, spec: torch.Tensor) -> str:
        """How :meth:`spectral_forward` mixes the band of a spectrum like ``spec``."""
        return "CPU kernel" if self._runs_kernel(spec) else "tensor operations"

    def _runs_kernel(self, spec: torch.Tensor) -> bool:
        """Whether the band of a spectrum like ``spec`` is mixed by the CPU kernel; with
        ``impl="native"``, one error where it cannot."""
        return self.spectral_weight is not None and runs_kernel(
            self.impl, mix_native.usable(spec),
            lambda: f"the spectral mixing's CPU kernel "
                    f"({'built' if mix_native.available() else native.status()}) and a CPU "
                    f"float32 or float64 input (got {spec.device.type} {spec.dtype})")
