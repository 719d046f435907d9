"""Shared pieces of the Fourier layer tests: band-limited inputs and the equivariance error."""

from __future__ import annotations

import torch
from hypothesis import settings

from scaleqbench.bench.run.metrics import relative_sq_error
from scaleqbench.datasets.scaling import fourier_resize

SETTINGS = settings(max_examples=12, deadline=None)
EXACT = 1e-20  # relative squared error, float64


def band_limited(shape: tuple[int, ...], n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Random images band-limited to size ``n`` (no Nyquist ring), as the data are."""
    g = torch.Generator().manual_seed(seed)
    return fourier_resize(torch.randn(*shape, 2 * n, 2 * n, generator=g, dtype=torch.float64),
                          n).to(dtype)


def worst_error(layer, x: torch.Tensor, sizes, out_size=lambda s: s) -> float:
    """max over sizes s, samples and channels of ||D f(x) - f(D_s x)||^2 / ||D f(x)||^2."""
    fx = layer(x)
    worst = 0.0
    for s in sizes:
        fs = layer(fourier_resize(x, s))
        assert fs.shape[-1] == out_size(s)
        worst = max(worst, relative_sq_error(fourier_resize(fx, fs.shape[-1]), fs).max().item())
    return worst
