"""The MNIST models of SiCNN and SI-ConvNet (the SESN benchmark's skeleton, global head).

Both follow the published MNIST-scale models block for block: three 7x7
convolutions (32/63/95 channels), each followed by ReLU, a 2x2 max-pool (first
two blocks) and batch norm, then an MLP head ``Linear(95, 256, no bias) -> BN
-> ReLU -> Dropout(0.7) -> Linear(256, 10)``. Only the layers differ:
SiCNN's columns (:mod:`.sicnn_layers`) against SI-ConvNet's scale pyramid
(:mod:`.si_convnet_layers`). Scales (both): 0.3, 0.45, 0.67, 1, 1.49, 2.23,
3.33 -- ratios of about 1.49.

Departures from the published models, both for variable input sizes (8...28):

* the head takes a global max over space of the last block's map instead of
  a 4x4 max-pool (padding 2) and flattening the resulting 2x2 map, so its first
  Linear reads ``C3`` features instead of ``4 * C3``: the models have
  ``3 * C3 * hidden`` parameters fewer than the published ones (72,960 at
  95 / 256); the last block's batch norm comes before the global pool
  instead of after the 4x4 pool (it is per channel, so the parameters are the
  same);
* the 2x2 max-pools use ``ceil_mode`` so odd sizes keep their last row and
  column (the same result at 28x28).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from scaleqbench.methods.common import BlockStackNet, mnist_head
from scaleqbench.methods.multicolumn.si_convnet_layers import ScaleInvariantConv2d
from scaleqbench.methods.multicolumn.sicnn_layers import (
    ColumnConv2d,
    ColumnMaxPool,
    fold_channel_major,
)

__all__ = ["MNIST_SCALES", "SIConvNetMnist", "SiCNNMnist", "mnist_head"]

#: The published MNIST scale set of both models (SESN benchmark, models/mnist_{xu,kanazawa}.py).
MNIST_SCALES: tuple[float, ...] = (0.3, 0.45, 0.67, 1.0, 1.49, 2.23, 3.33)


def _post(c: int, pool: bool) -> list[nn.Module]:
    # ReLU -> [2x2 max-pool] -> BN: the published block order
    layers: list[nn.Module] = [nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    layers.append(nn.BatchNorm2d(c))
    return layers


def _stack(in_channels: int, channels: Sequence[int], columns: int,
           conv: Callable[[int, int, int], nn.Module]) -> nn.ModuleList:
    """Blocks ``conv(i, c_in, c_out)`` -> :func:`_post` (2x2 pool in all but the last), the
    post-ops over ``c_out * columns`` channels (the columns folded into channels)."""
    blocks = []
    c_prev = in_channels
    for i, c in enumerate(channels):
        blocks.append(nn.Sequential(conv(i, c_prev, c),
                                    *_post(c * columns, pool=i < len(channels) - 1)))
        c_prev = c
    return nn.ModuleList(blocks)


class SiCNNMnist(BlockStackNet):
    """SiCNN (Xu et al. 2014) for MNIST: ``S`` columns sharing every kernel, max over columns at the end.

    Every block is a :class:`ColumnConv2d` (column ``j`` uses the kernel zoomed
    by ``scales[j]``; block 1 feeds all columns from the image, later blocks
    keep the columns apart), ReLU, 2x2 max-pool and a batch norm with its own
    statistics per column and channel. The head takes the max over columns
    and then over space. No convolution has a bias.

    ``features``: each block's ``(B, C * S, H', W')`` map, column axis folded
    channel-major (channel ``c``, column ``j`` -> ``c * S + j``; column ``j``
    is scale ``scales[j]``), then ``proj``, the column max the head pools.
    See the module docstring for the departures from the published model.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 channels: Sequence[int] = (32, 63, 95), kernel_size: int = 7,
                 scales: Sequence[float] = MNIST_SCALES, hidden: int = 256,
                 dropout: float = 0.7):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        n = len(self.scales)
        self.blocks = _stack(
            in_channels, channels, n,
            lambda i, c_in, c_out: ColumnConv2d(c_in, c_out, kernel_size, self.scales,
                                                columns_in=i > 0))
        self.project = ColumnMaxPool(n)
        self.head = mnist_head(channels[-1], hidden, num_classes, dropout)

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        return fold_channel_major(x, len(self.scales))


class SIConvNetMnist(BlockStackNet):
    """SI-ConvNet (Kanazawa et al. 2014) for MNIST: every convolution scale-invariant.

    Every block is a :class:`ScaleInvariantConv2d` (the input zoomed by each
    scale, the shared 7x7 kernel with bias, zoomed back, max over scales),
    ReLU, 2x2 max-pool and batch norm; the head pools globally over space.
    Parameters are those of the plain CNN with the same head.

    ``features``: each block's ``(B, C, H', W')`` map (no scale axis: the
    max over scales is taken inside every layer). See the module docstring
    for the departures from the published model.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 channels: Sequence[int] = (32, 63, 95), kernel_size: int = 7,
                 scales: Sequence[float] = MNIST_SCALES, hidden: int = 256,
                 dropout: float = 0.7):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.blocks = _stack(
            in_channels, channels, 1,
            lambda i, c_in, c_out: ScaleInvariantConv2d(c_in, c_out, kernel_size, self.scales))
        self.head = mnist_head(channels[-1], hidden, num_classes, dropout)
