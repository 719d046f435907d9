"""SI-ConvNet layer (Kanazawa, Sharma & Jacobs 2014): convolve a scale pyramid, max over scales.

For every scale ``s`` of the layer the input is zoomed by ``s`` on its own
canvas (:func:`~methods.multicolumn.rescale.rescale_on_canvas`, bilinear with
aligned corners), convolved with the one shared kernel, zoomed back by
``1 / s`` and the responses are max-pooled over the scales::

    y = max_s  Z_{1/s} ( W * Z_s x + b )

The canvas keeps the map's size: a column with ``s > 1`` sees the central
``H / s`` of the input and answers only there (zero, not ``b``, on the border
its shrink-back leaves); one with ``s < 1`` sees all of it, shrunk and
surrounded by zeros. That is how the SESN
benchmark implemented the layer (the published MNIST-scale and STL-10 numbers
come from it) and what ``tests/fixtures/si_convnet`` pins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.multicolumn.rescale import check_kernel_and_scales, rescale_on_canvas

__all__ = ["ScaleInvariantConv2d"]


class ScaleInvariantConv2d(nn.Module):
    """Locally scale-invariant convolution: one kernel applied at every scale, max over scales.

    ``(B, C_in, H, W) -> (B, C_out, H', W')`` with "same" zero padding
    (``H' = H`` at stride 1). Parameters are those of one ``Conv2d``.

    Equivariance: to translations (by multiples of ``stride``, away from the
    border), and, up to interpolation error, to zooms of the input by a ratio
    ``r`` of two scales of the set: ``L(Z_r x) ~ Z_r L(x)``, since ``Z_s Z_r ~
    Z_{sr}`` turns the zoom into a shift of the scale set, which the max does
    not see -- except for the scale that falls off an end of the set. The
    output is *locally* invariant: a pattern is found at the scale that
    matches it, wherever it is. ``tests/test_si_convnet.py`` measures it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 scales: Sequence[float], stride: int = 1, bias: bool = True):
        super().__init__()
        self.scales = check_kernel_and_scales("SI-ConvNet", kernel_size, scales)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's Conv2d default, which the published MNIST model keeps
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size ** 2)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.scales)
        # one convolution over the whole pyramid: the scales ride on the batch axis
        pyramid = torch.cat([rescale_on_canvas(x, s) for s in self.scales])
        y = F.conv2d(pyramid, self.weight, self.bias, stride=self.stride,
                     padding=self.kernel_size // 2)
        back = [rescale_on_canvas(part, 1 / s) for part, s in zip(y.chunk(n), self.scales)]
        # max with indices: its backward scatters through the indices (cheaper than a chain of
        # pairwise maxima) and does not need the output, so an in-place ReLU may follow
        return torch.stack(back).max(dim=0).values

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"scales={self.scales}, stride={self.stride}, bias={self.bias is not None}")
