"""Mean and band-limited mean squares of maps, read from their real spectra in cache-sized chunks.

For real spectra ``spec`` ``(K, K, N)`` and band weights ``w`` ``(S, k)``
(:func:`~methods.fourier.basis.band_mean_square`, ``k <= K``) the mean of map ``i`` is
``spec[0, 0, i]`` and the mean square of its band ``s`` is
``sum_{a, b < k} spec[a, b, i]^2 w[s, a] w[s, b]`` (Parseval). The ring
nonlinearity's instance norm (:mod:`methods.fourier.grid_rings`) and the head's RMS
pooling (:mod:`methods.fourier.models`) both need them. Written with tensor ops,
the energies ``spec^2`` and their gradient are full-size tensors, and so is the
gradient of ``spec[0, 0]`` (a zero-filled copy); here they exist one chunk of maps
at a time, and the spectrum's gradient is written into one workspace buffer.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from scaleqbench.methods.fourier import moments_native
from scaleqbench.methods.fourier.chunking import CHUNK_ELEMENTS, chunk_slices
from scaleqbench.methods.fourier.workspace import Workspace, workspace_empty

__all__ = ["SpectrumMoments", "band_energy", "band_energy_backward"]

def band_energy(spec: torch.Tensor, w: torch.Tensor, budget: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``(S, N)``: the mean square of every band ``w`` of every map (see the module docstring)."""
    k, n = w.shape[1], spec.shape[2]
    out = spec.new_empty(w.shape[0], n)
    for sl in chunk_slices(n, k * k, budget):
        c = sl.stop - sl.start
        energy = spec[:k, :k, sl].square().reshape(k, k * c)
        left = (w @ energy).view(-1, k, c)  # sum over a
        out[:, sl] = (left * w[:, :, None]).sum(1)  # then over b
    return out


def band_energy_backward(spec: torch.Tensor, w: torch.Tensor, g_sq: torch.Tensor,
                         g_spec: torch.Tensor, budget: int = CHUNK_ELEMENTS) -> None:
    """``g_spec[:k, :k] += 2 spec sum_s g_sq[s] w[s, a] w[s, b]``: the transpose of
    :func:`band_energy` at ``spec``."""
    k, n = w.shape[1], spec.shape[2]
    for sl in chunk_slices(n, k * k, budget):
        c = sl.stop - sl.start
        t = (w[:, :, None] * g_sq[:, None, sl]).reshape(w.shape[0], k * c)  # [s, (b, i)]
        m = (w.T @ t).view(k, k, c)
        g_spec[:k, :k, sl].addcmul_(spec[:k, :k, sl], m, value=2.0)


class SpectrumMoments(torch.autograd.Function):
    """``(spec (K, K, N), w (S, k)) -> (mean (N,), mean squares (S, N))``; ``w`` is a constant.

    The gradient at ``spec`` comes from ``ws`` (one buffer, no full-size temporaries). On the
    CPU (float32/64) the CPU kernel computes both directions
    (:mod:`methods.fourier.moments_native`), elsewhere tensor operations, in chunks.
    """

    @staticmethod
    def forward(ctx, spec, w, ws: Workspace | None, budget: int = CHUNK_ELEMENTS):
        # the kernel's weight products, made once here and kept for backward (None: tensor ops)
        ctx.bands = moments_native.BandProducts.of(w) if moments_native.usable(spec) else None
        if ctx.bands is not None:
            spec = spec.contiguous()
        ctx.save_for_backward(spec, w)
        ctx.ws, ctx.budget = ws, budget
        if ctx.bands is not None:
            return moments_native.forward(spec, ctx.bands)
        return spec[0, 0].clone(), band_energy(spec, w, budget)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_mean, g_sq):
        spec, w = ctx.saved_tensors
        g_spec = workspace_empty(ctx.ws, spec.shape, spec)
        if ctx.bands is not None:
            if w.shape[1] < spec.shape[0]:  # the kernel writes the leading k x k block
                g_spec.zero_()
            moments_native.backward(spec, ctx.bands, g_mean, g_sq, g_spec)
            return g_spec, None, None, None
        g_spec.zero_()
        if g_sq is not None:
            band_energy_backward(spec, w, g_sq, g_spec, ctx.budget)
        if g_mean is not None:
            g_spec[0, 0] += g_mean
        return g_spec, None, None, None
