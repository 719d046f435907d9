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


def layer_pair(channels, base, top, pool, act, norm, seed, dtype=torch.float64,
               impls=("fast", "reference"), **kwargs):
    """The same ring nonlinearity twice, with the same parameters, computed two ways
    (``impls``); with a norm, its affine well away from dead channels, so that relative
    errors mean something."""
    from scaleqbench.methods.fourier.nonlinearity import RingNonlinearity

    torch.manual_seed(seed)
    first = RingNonlinearity(channels, base, top, pool=pool, act=act, norm=norm,
                             impl=impls[0], **kwargs).to(dtype)
    if norm:
        with torch.no_grad():
            first.gamma.uniform_(0.5, 1.5)
            first.beta.uniform_(-0.5, 0.5)
    second = RingNonlinearity(channels, base, top, pool=pool, act=act, norm=norm,
                              impl=impls[1]).to(dtype)
    second.load_state_dict(first.state_dict())
    return first, second


def fourier_paths() -> tuple[str, str]:
    """How the ``fourier`` network's ring nonlinearity and spectral mixing compute on this
    install's CPU (float32, ReLU): its kernels, or tensor operations without a build."""
    from scaleqbench.methods.fourier import mix_native, native

    ring = f"CPU kernel ({native.status()})" if native.available() else "tensor operations"
    return ring, "CPU kernel" if mix_native.available() else "tensor operations"
