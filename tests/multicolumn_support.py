"""Helpers shared by tests/test_sicnn.py and tests/test_si_convnet.py.

Zoomed inputs are rendered, not resampled: Gaussian blobs drawn at object
scale ``zoom`` about the canvas centre are the exact zoom of the ``zoom=1``
image, so a measured error belongs to the layer, not to the test's resampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FIXTURES = Path(__file__).parent / "fixtures"
#: The published MNIST scale set of both methods.
MNIST_SCALES = (0.3, 0.45, 0.67, 1.0, 1.49, 2.23, 3.33)


def close(ours: torch.Tensor, theirs: torch.Tensor, rel: float = 1e-5) -> bool:
    """Equal to float32 precision, relative to the reference's magnitude."""
    return torch.allclose(ours, theirs, rtol=0, atol=rel * theirs.abs().max().item())


def load_reference(method: str) -> dict[str, torch.Tensor | float | int]:
    """``tests/fixtures/<method>/reference.npz`` as tensors (0-d arrays as Python numbers)."""
    with np.load(FIXTURES / method / "reference.npz") as data:
        return {k: (v.item() if v.ndim == 0 else torch.from_numpy(v)) for k, v in data.items()}


def render_blobs(n: int, zoom: float, seed: int, channels: int = 1, n_blobs: int = 5,
                 width: float = 1.5, spread: float = 0.3) -> torch.Tensor:
    """``(1, channels, n, n)`` float64: random Gaussian blobs (widths ``width``..``2 width``
    px, centres within ``spread * n`` of the centre, random signs) zoomed by ``zoom``."""
    g = torch.Generator().manual_seed(seed)
    c = (n - 1) / 2
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64) - c,
                          torch.arange(n, dtype=torch.float64) - c, indexing="ij")
    out = []
    for _ in range(channels):
        centres = ((torch.rand(n_blobs, 2, generator=g, dtype=torch.float64) - 0.5)
                   * n * spread).tolist()
        widths = (width * (1 + torch.rand(n_blobs, generator=g, dtype=torch.float64))).tolist()
        amps = torch.randn(n_blobs, generator=g, dtype=torch.float64).tolist()
        img = torch.zeros(n, n, dtype=torch.float64)
        for (cy, cx), w, a in zip(centres, widths, amps):
            img += a * torch.exp(-((y / zoom - cy) ** 2 + (x / zoom - cx) ** 2) / (2 * w ** 2))
        out.append(img)
    return torch.stack(out)[None]


def smooth_kernels(c_out: int, c_in: int, k: int, seed: int, width: float = 1.2) -> torch.Tensor:
    """Random ``k x k`` kernels blurred by a Gaussian of std ``width`` (well sampled, so that
    their zooms are zooms of one continuous kernel), float64."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c_out * c_in, 1, k, k, generator=g, dtype=torch.float64)
    t = torch.arange(k, dtype=torch.float64) - k // 2
    g1 = torch.exp(-t ** 2 / (2 * width ** 2))
    g1 = g1 / g1.sum()
    return F.conv2d(w, (g1[:, None] * g1[None, :])[None, None], padding=k // 2).reshape(
        c_out, c_in, k, k)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` over the whole tensor."""
    return ((a - b).norm() / b.norm()).item()


def global_max(y: torch.Tensor) -> torch.Tensor:
    """Per channel maximum over space: what a global max-pool head sees."""
    return y.amax(dim=(-2, -1))
