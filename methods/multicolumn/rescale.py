"""Rescaling on a fixed canvas: the resampling both SiCNN and SI-ConvNet are built from.

``rescale_on_canvas(x, factor)`` zooms the content of a ``(B, C, H, W)`` map by
``factor`` about its centre and returns a map of the same ``H x W``: the
content is resampled to ``floor(H * factor) x floor(W * factor)`` and then
zero-padded (shrinking) or cropped (enlarging) about the centre, with the odd
pixel of an uneven margin on the right / bottom for padding and on the left /
top for cropping. The resampling is bilinear with aligned corners (the grid's
first and last pixels keep their positions) or nearest-neighbour.

Why not :func:`datasets.scaling.canvas_rescale` (bicubic)? Both published models
were defined, and their fixtures made (``tests/fixtures/{sicnn,si_convnet}``),
with this bilinear / nearest resampling and this centring; the models must
reproduce them to float precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["MODES", "centre_offsets", "check_kernel_and_scales", "rescale_on_canvas",
           "rescaled_size"]

MODES = ("bilinear", "nearest")


def check_kernel_and_scales(method: str, kernel_size: int, scales: Sequence[float]
                            ) -> tuple[float, ...]:
    """The scales of a ``method`` layer as floats, after checking that its kernel has a
    centre pixel (odd size) and that every scale is a positive zoom."""
    if kernel_size % 2 != 1:
        raise ValueError(f"{method} kernels must have an odd size, got {kernel_size}")
    if not scales or min(scales) <= 0:
        raise ValueError(f"{method} scales must be positive, got {tuple(scales)}")
    return tuple(float(s) for s in scales)


def rescaled_size(size: int, factor: float) -> int:
    """``floor(size * factor)`` (the interpolation's own rounding), at least one pixel.

    The floor of 1 matters on tiny maps (2x2 after two poolings of an 8x8 input):
    a 0.3 zoom would otherwise ask for an empty map.
    """
    return max(1, math.floor(size * factor))


def centre_offsets(canvas: int, size: int) -> tuple[int, int]:
    """Zero pixels to add before and after ``size`` to centre it on ``canvas`` (negative: crop)."""
    before = (canvas - size) // 2
    return before, canvas - size - before


def rescale_on_canvas(x: torch.Tensor, factor: float, mode: str = "bilinear") -> torch.Tensor:
    """Zoom ``x`` (``(B, C, H, W)``) by ``factor`` about the centre; the output is ``H x W``.

    ``factor > 1`` enlarges (the border is cropped away), ``factor < 1`` shrinks
    (the border is filled with zeros); ``factor == 1`` returns ``x`` itself.
    ``mode="nearest"`` picks, for output pixel ``i``, input pixel
    ``floor(i / factor)`` (PyTorch's rule for a given scale factor).
    """
    if mode not in MODES:
        raise ValueError(f"rescale mode must be one of {MODES}, got {mode!r}")
    if factor <= 0:
        raise ValueError(f"rescale factor must be positive, got {factor}")
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    if mode == "bilinear":
        # with aligned corners only the output size matters (the sampling step is
        # (n - 1) / (m - 1)), so the floored size is passed directly
        size = (rescaled_size(h, factor), rescaled_size(w, factor))
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    else:
        y = F.interpolate(x, scale_factor=factor, mode="nearest")
    top, bottom = centre_offsets(h, y.shape[-2])
    left, right = centre_offsets(w, y.shape[-1])
    return F.pad(y, (left, right, top, bottom))
