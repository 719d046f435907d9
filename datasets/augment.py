"""Train-time augmentations named by a dataset's ``augment`` field.

* ``rescale`` (MNIST-scale+): every image zoomed by a factor drawn from
  U[0.5, 2] on its canvas (:func:`datasets.scaling.canvas_rescale`).
* ``stl`` (SESN's STL-10 recipe): random crop with 12-pixel zero padding,
  horizontal flip, and cutout of one 32x32 square.

Every draw comes from the ``generator`` passed in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scaleqbench.datasets.scaling import canvas_rescale

__all__ = ["AUGMENTATIONS", "augment"]

AUGMENTATIONS = ("rescale", "stl")


def _rescale(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    factors = 0.5 + 1.5 * torch.rand(x.shape[0], generator=g, dtype=torch.float64)
    return canvas_rescale(x, factors)


def _stl(x: torch.Tensor, g: torch.Generator, pad: int = 12, cut: int = 32) -> torch.Tensor:
    b, _, n, _ = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    offs = torch.randint(0, 2 * pad + 1, (b, 2), generator=g)
    flips = torch.rand(b, generator=g) < 0.5
    centres = torch.randint(0, n, (b, 2), generator=g)
    for i in range(b):
        oy, ox = offs[i].tolist()
        img = padded[i, :, oy:oy + n, ox:ox + n]
        if flips[i]:
            img = img.flip(-1)
        img = img.clone()
        cy, cx = centres[i].tolist()
        img[:, max(0, cy - cut // 2):cy + cut // 2, max(0, cx - cut // 2):cx + cut // 2] = 0
        out[i] = img
    return out


def augment(name: str | None, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply augmentation ``name`` to a batch on the CPU (``None``: unchanged)."""
    if name is None:
        return x
    if name == "rescale":
        return _rescale(x, generator)
    if name == "stl":
        return _stl(x, generator)
    raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTATIONS)}")
