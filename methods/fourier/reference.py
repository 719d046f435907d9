"""Plainly written per-ring reference of the scale-equivariant nonlinearity and pooling.

This is a literal transcription of the definition in
:mod:`methods.fourier.nonlinearity`, one evaluation grid at a time, through the
complex FFT (an independent route from the fast path's real DFT matrices):

    for each evaluation (the base grid, then one grid per output ring):
        x_g = D_g x                         (fourier_resize_fft to the g x g grid)
        y_g = pool_p(act(norm_g(x_g)))
        copy the wanted ring(s) of fft2(y_g) into the output spectrum
    output = ifft2(output spectrum)

It is selected with ``create("fourier", impl="reference")`` and serves as the
oracle the fast implementation is tested against, and as the baseline of the
speed comparison. It is deliberately not optimised.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from scaleqbench.datasets.scaling import fourier_resize_fft
from scaleqbench.methods.fourier.basis import ring_count, ring_schedule

__all__ = ["ring_nonlinearity_reference", "ring_mask"]


def ring_mask(n: int, lo: int, hi: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean ``(n, n)`` mask (FFT order) of the frequencies with ``lo <= |k|_inf <= hi``."""
    k = torch.fft.fftfreq(n, 1 / n, device=device).round().long().abs()
    ring = torch.maximum(k[:, None], k[None, :])
    return (ring >= lo) & (ring <= hi)


def _embed(spec: torch.Tensor, n: int, jmax: int) -> torch.Tensor:
    """Place the frequencies ``|k|_inf <= jmax`` of a small FFT-ordered spectrum into an n x n one."""
    g = spec.shape[-1]
    ks = torch.arange(-jmax, jmax + 1, device=spec.device)
    src, dst = ks % g, ks % n
    out = torch.zeros(*spec.shape[:-2], n, n, dtype=spec.dtype, device=spec.device)
    out[..., dst[:, None], dst[None, :]] = spec[..., src[:, None], src[None, :]]
    return out


def ring_nonlinearity_reference(x: torch.Tensor, base: int, pool: int,
                                gamma: torch.Tensor | None, beta: torch.Tensor | None,
                                act: Callable[[torch.Tensor], torch.Tensor],
                                eps: float) -> torch.Tensor:
    """The layer of :class:`~methods.fourier.nonlinearity.RingNonlinearity`, one grid at a time."""
    n = x.shape[-1]
    m = n // pool
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    out = torch.zeros(*x.shape[:-2], m, m, dtype=cdtype, device=x.device)
    lo = 0
    for idx, (grid, _band, ring) in enumerate(ring_schedule(n, base, pool)):
        xg = fourier_resize_fft(x, grid)
        if gamma is not None:
            xg = F.instance_norm(xg, weight=gamma[idx], bias=beta[idx], eps=eps)
        yg = act(xg)
        if pool > 1:
            yg = F.max_pool2d(yg, pool)
        spec = torch.fft.fft2(yg.to(cdtype), norm="forward")
        mask = ring_mask(m, lo, ring, x.device)
        out = torch.where(mask, _embed(spec, m, ring), out)
        lo = ring + 1
    assert lo == ring_count(m) + 1
    return torch.fft.ifft2(out, norm="forward").real
