"""SiCNN layers (Xu et al. 2014): columns that share one kernel, resized per column.

A SiCNN layer holds one learned kernel ``W`` per (output, input) channel pair
and ``S`` columns, one per scale ``s``. Column ``s`` convolves with ``W``
zoomed by ``s`` (:func:`column_kernels`):

1. ``W`` (``k x k``) is zero-padded to a common canvas of side
   ``n = k + 2 ceil((floor(k max(s)) - k) / 2)``, wide enough for the largest
   column (:func:`kernel_canvas`);
2. the canvas is zoomed by ``s`` about its centre (:mod:`.rescale`): bilinear
   with aligned corners when shrinking, nearest-neighbour when enlarging (the
   paper asks for the enlargement of least L2 norm; the SESN benchmark's
   implementation, which the fixtures come from, uses nearest-neighbour);
3. the result is multiplied by ``|W|_1 / |W_s|_1`` (per channel pair), so that
   every column has the L1 norm of ``W``.

Why L1: for a smooth image ``f`` and a smooth kernel, zooming both by ``r``
zooms their correlation by ``r`` when the kernel's amplitude falls by ``r^2``,
``(f(./r) * r^-2 W(./r))(y) = (f * W)(y / r)`` -- the zoom that keeps the
kernel's integral and its L1 norm. So the column at scale
``r s`` answers to the image zoomed by ``r`` as the column at ``s`` answers to
the original, zoomed by ``r`` (:class:`ColumnConv2d`'s equivariance), and the
max over columns (:class:`ColumnMaxPool`) is invariant to zooms by ratios of
the scale set, up to interpolation error and the ends of the set.

Tensor layout: column-major channels, ``(B, S * C, H, W)`` with column ``j``
in channels ``j*C ... (j+1)*C - 1``; :func:`fold_channel_major` reorders to
the ``c * S + j`` layout the benchmark's features use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.multicolumn.rescale import (
    centre_offsets,
    check_kernel_and_scales,
    rescaled_size,
)

__all__ = ["ColumnConv2d", "ColumnMaxPool", "column_kernels", "fold_channel_major",
           "kernel_canvas", "zoom_kernels", "zoom_matrix"]

# floor of the zoomed kernel's L1 norm: a zero kernel stays zero instead of becoming 0 / 0
_NORM_FLOOR = 1e-12


def kernel_canvas(kernel_size: int, scales: Sequence[float]) -> int:
    """Side of the square canvas all columns' kernels are drawn on (odd for odd ``kernel_size``).

    ``floor(k * max(s))`` pixels are what the largest column needs; the canvas
    grows ``k`` by whole pixel pairs up to at least that. It never shrinks
    below ``k`` (a scale set below 1 keeps the learned kernel whole).
    """
    largest = math.floor(kernel_size * max(scales))
    return kernel_size + 2 * max(0, math.ceil((largest - kernel_size) / 2))


def zoom_matrix(kernel_size: int, scale: float, canvas: int) -> torch.Tensor:
    """The zoom of one kernel axis as a ``(canvas, kernel_size)`` matrix ``A``: ``W_s = A W A^T``.

    Column ``j`` is the canvas-wide zoom (step 2 of the module docstring) of the
    unit vector at kernel tap ``j``; bilinear and nearest-neighbour zooms are
    separable, so the 2-D zoom of the padded kernel is ``A W A^T``. Computed by
    the same interpolation, in float32, as the 2-D zoom, so the weights agree.
    """
    pad = (canvas - kernel_size) // 2
    taps = torch.zeros(kernel_size, 1, canvas, dtype=torch.float32)
    taps[:, 0, pad:pad + kernel_size] = torch.eye(kernel_size)
    if kernel_size == 1 or scale == 1:  # nothing to zoom: the kernel sits in the canvas centre
        return taps[:, 0].T.contiguous()
    if scale > 1:
        zoomed = F.interpolate(taps, scale_factor=scale, mode="nearest")
    else:
        zoomed = F.interpolate(taps, size=rescaled_size(canvas, scale), mode="linear",
                               align_corners=True)
    before, after = centre_offsets(canvas, zoomed.shape[-1])
    return F.pad(zoomed, (before, after))[:, 0].T.contiguous()


def _support_margin(matrix: torch.Tensor) -> int:
    """How many rows at each end of a zoom matrix are zero (the same count both ends)."""
    rows = torch.nonzero(matrix.abs().sum(1)).flatten()
    return min(rows[0].item(), matrix.shape[0] - 1 - rows[-1].item())


def zoom_kernels(weight: torch.Tensor, matrices: Sequence[torch.Tensor],
                 scales: Sequence[float]) -> list[torch.Tensor]:
    """Each column's kernel ``A_j W A_j^T``, rescaled to the L1 norm of ``W`` per channel pair.

    ``weight`` is ``(C_out, C_in, k, k)``; column ``j``'s kernel is
    ``(C_out, C_in, n_j, n_j)`` with ``n_j`` the rows of ``matrices[j]``. The
    scale-1 column and 1x1 kernels are ``W`` itself.
    """
    norm = weight.abs().sum(dim=(-2, -1), keepdim=True)
    out = []
    for a, s in zip(matrices, scales):
        a = a.to(weight)  # dtype and device of the weights
        # a unit matrix (scale 1, 1x1 kernels) multiplies exactly: the column is W itself
        kern = a @ weight @ a.T
        if s != 1 and weight.shape[-1] != 1:
            kern_norm = kern.abs().sum(dim=(-2, -1), keepdim=True).clamp_min(_NORM_FLOOR)
            kern = kern * (norm / kern_norm)
        out.append(kern)
    return out


def column_kernels(weight: torch.Tensor, scales: Sequence[float], canvas: int) -> torch.Tensor:
    """Every column's kernel on the full canvas, ``(S, C_out, C_in, canvas, canvas)``."""
    k = weight.shape[-1]
    matrices = [zoom_matrix(k, s, canvas) for s in scales]
    return torch.stack(zoom_kernels(weight, matrices, scales))


def fold_channel_major(x: torch.Tensor, n_columns: int) -> torch.Tensor:
    """``(B, S * C, H, W)`` column-major -> ``(B, C * S, H, W)`` with channel ``c * S + j``."""
    b, sc, h, w = x.shape
    return x.reshape(b, n_columns, sc // n_columns, h, w).transpose(1, 2).reshape(b, sc, h, w)


class ColumnConv2d(nn.Module):
    """SiCNN convolution: ``S`` columns, column ``j`` convolves with ``W`` zoomed by ``scales[j]``.

    ``columns_in=False`` (the first layer): input ``(B, C_in, H, W)``, every
    column reads it. ``columns_in=True``: input ``(B, S * C_in, H, W)``,
    column ``j`` reads only column ``j`` of its input. Output
    ``(B, S * C_out, H', W')``, column-major; "same" zero padding, no bias
    (each column is followed by its own batch norm).

    Equivariance: to translations (by multiples of ``stride``), and, up to
    interpolation error, to zooms of the input by ``r = scales[j+1] / scales[j]``
    as a shift along the columns: column ``j + 1`` of the zoomed input is
    column ``j`` of the original, zoomed by ``r`` (see the module docstring).
    ``tests/test_sicnn.py`` measures it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 scales: Sequence[float], stride: int = 1, columns_in: bool = False):
        super().__init__()
        self.scales = check_kernel_and_scales("SiCNN", kernel_size, scales)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.columns_in = columns_in
        self.canvas = kernel_canvas(kernel_size, self.scales)
        # each column's zoom matrix without the rows that are zero for every kernel: the
        # column convolves with its kernel's support only, the same sums as the whole
        # canvas at a fraction of the cost (a 0.3 column on a 23x23 canvas needs 3x3)
        for j, s in enumerate(self.scales):
            a = zoom_matrix(kernel_size, s, self.canvas)
            if not a.any():
                raise ValueError(
                    f"SiCNN scale {s} shrinks a {kernel_size}x{kernel_size} kernel on its "
                    f"{self.canvas}-px canvas to nothing (its samples miss every tap); "
                    f"use larger scales or a larger kernel")
            m = _support_margin(a)
            self.register_buffer(f"zoom{j}", a[m:a.shape[0] - m].clone(), persistent=False)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's Conv2d default, which the published MNIST model keeps
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def n_columns(self) -> int:
        return len(self.scales)

    def zoom_matrices(self) -> list[torch.Tensor]:
        """Column ``j``'s zoom matrix, cropped to the rows any kernel can reach."""
        return [getattr(self, f"zoom{j}") for j in range(self.n_columns)]

    def kernels(self) -> list[torch.Tensor]:
        """Column ``j``'s kernel ``(C_out, C_in, n_j, n_j)``, cropped to its support."""
        return zoom_kernels(self.weight, self.zoom_matrices(), self.scales)

    def column_kernels(self) -> torch.Tensor:
        """Every column's kernel on the full canvas, ``(S, C_out, C_in, n, n)``."""
        return column_kernels(self.weight, self.scales, self.canvas)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = x.chunk(self.n_columns, dim=1) if self.columns_in else [x] * self.n_columns
        outs = [F.conv2d(inp, kern, stride=self.stride, padding=kern.shape[-1] // 2)
                for inp, kern in zip(inputs, self.kernels())]
        return torch.cat(outs, dim=1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"scales={self.scales}, canvas={self.canvas}, stride={self.stride}, "
                f"columns_in={self.columns_in}")


class ColumnMaxPool(nn.Module):
    """Max over the ``S`` columns: ``(B, S * C, H, W) -> (B, C, H, W)``.

    Invariant to permutations of the columns, hence (with :class:`ColumnConv2d`)
    to zooms of the input by ratios of the scale set, up to interpolation error
    and the column that falls off the end of the set.
    """

    def __init__(self, n_columns: int):
        super().__init__()
        self.n_columns = n_columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, sc, h, w = x.shape
        return x.reshape(b, self.n_columns, sc // self.n_columns, h, w).max(dim=1).values
