"""STL-10 wide ResNets (WRN-16-8) of SiCNN and SI-ConvNet, as in the SESN benchmark.

One pre-activation wide ResNet (Zagoruyko & Komodakis 2016; widths 16, 16k,
32k, 64k; groups at strides 1, 2, 2; dropout between a block's two
convolutions; a projected shortcut reads the pre-activated input) whose parts
each method supplies:

* :class:`SiCNNWideResNet` -- every convolution, the 1x1 shortcuts included, is a
  :class:`~.sicnn_layers.ColumnConv2d` (scales 0.67, 1, 1.5: three columns
  from the stem on); batch norms have statistics per column; the head averages
  each column over space, takes the max over columns and applies the Linear.
* :class:`SIConvNetWideResNet` -- every 3x3 convolution is a
  :class:`~.si_convnet_layers.ScaleInvariantConv2d` (scales 0.5, 1, 2); the
  1x1 shortcuts stay plain convolutions, as published (a pointwise map has no
  scale to select); the head is the plain WRN's.

Weights start as published: He-normal over the fan-out ``k * k * C_out`` (per
column for SiCNN), batch norms at (1, 0), zero Linear bias.

Departure: the spatial average of the head is global instead of a fixed 24x24
window, so that sizes other than 96 (``stl10-res``: 49...97) work; at 96x96,
where the last map is 24x24, the two are the same and the parameter counts
equal the published ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from scaleqbench.methods.common import (
    PreActWRN,
    WideBlock,
    conv1x1_shortcut,
    init_norms_and_linear_biases,
    wrn_blocks_per_group,
    wrn_groups,
)
from scaleqbench.methods.multicolumn.si_convnet_layers import ScaleInvariantConv2d
from scaleqbench.methods.multicolumn.sicnn_layers import (
    ColumnConv2d,
    ColumnMaxPool,
    fold_channel_major,
)

__all__ = ["SIConvNetWideResNet", "STL10_SCALES_SICNN", "STL10_SCALES_SI_CONVNET",
           "SiCNNWideResNet"]

#: Published STL-10 scale sets (SESN benchmark, models/stl_{xu,kanazawa}.py).
STL10_SCALES_SICNN: tuple[float, ...] = (0.67, 1.0, 1.5)
STL10_SCALES_SI_CONVNET: tuple[float, ...] = (0.5, 1.0, 2.0)


class _WideResNet(PreActWRN):
    """WRN-``depth``-``widen`` from the parts ``make_stem / make_conv / make_norm / make_shortcut``.

    Every block is the pre-activation WRN block (:class:`~methods.common.WideBlock`) of
    those parts, so it is as equivariant as they are (translations by multiples of the
    stride; the method's scale behaviour, see its layers). ``features``: the stem and
    each group's output, then ``proj``: the final BN-ReLU map, column-free.
    """

    def __init__(self, in_channels: int, num_classes: int, depth: int, widen: int,
                 dropout: float, scales: Sequence[float]):
        super().__init__()
        # the parts read the scales while the body is built
        self.scales = tuple(float(s) for s in scales)
        n = wrn_blocks_per_group(depth)
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.stem = self.make_stem(in_channels, widths[0])
        self.groups = wrn_groups(widths, n, lambda g, i, c_in, c_out, stride: WideBlock(
            c_in, c_out, stride, dropout, conv=self._conv3x3, norm=self.make_norm,
            shortcut=self.make_shortcut))
        self.bn = self.make_norm(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self._init()

    # parts, supplied by each method
    def make_stem(self, c_in: int, c_out: int) -> nn.Module:
        raise NotImplementedError

    def make_conv(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> nn.Module:
        raise NotImplementedError

    def make_norm(self, channels: int) -> nn.Module:
        raise NotImplementedError

    def make_shortcut(self, c_in: int, c_out: int, stride: int) -> nn.Module:
        raise NotImplementedError

    def _conv3x3(self, c_in: int, c_out: int, stride: int) -> nn.Module:
        return self.make_conv(c_in, c_out, 3, stride)

    def _init(self) -> None:
        for m in self.modules():
            weight = getattr(m, "weight", None)
            if isinstance(weight, nn.Parameter) and weight.dim() == 4:
                fan_out = weight.shape[-1] * weight.shape[-2] * weight.shape[0]
                nn.init.normal_(weight, 0.0, math.sqrt(2.0 / fan_out))
        init_norms_and_linear_biases(self, (nn.BatchNorm2d,))


class SiCNNWideResNet(_WideResNet):
    """SiCNN WRN-16-8: every convolution is a column convolution (published scales 0.67, 1, 1.5).

    Block and group outputs carry the columns (``(B, S * C, H, W)``); features
    fold them channel-major (``c * S + j``). Head: per-column global average,
    max over columns, Linear.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 16,
                 widen: int = 8, dropout: float = 0.3,
                 scales: Sequence[float] = STL10_SCALES_SICNN):
        super().__init__(in_channels, num_classes, depth, widen, dropout, scales)
        self.column_pool = ColumnMaxPool(len(self.scales))

    def make_stem(self, c_in: int, c_out: int) -> nn.Module:
        return ColumnConv2d(c_in, c_out, 3, self.scales, columns_in=False)

    def make_conv(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> nn.Module:
        return ColumnConv2d(c_in, c_out, kernel_size, self.scales, stride=stride, columns_in=True)

    def make_norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels * len(self.scales))

    def make_shortcut(self, c_in: int, c_out: int, stride: int) -> nn.Module:
        return self.make_conv(c_in, c_out, 1, stride)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.column_pool(x.mean(dim=(-2, -1), keepdim=True)).flatten(1)

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        return fold_channel_major(x, len(self.scales))

    def project_final(self, x: torch.Tensor) -> torch.Tensor:
        return self.column_pool(x)


class SIConvNetWideResNet(_WideResNet):
    """SI-ConvNet WRN-16-8: every 3x3 convolution is scale-invariant (published scales 0.5, 1, 2)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 16,
                 widen: int = 8, dropout: float = 0.3,
                 scales: Sequence[float] = STL10_SCALES_SI_CONVNET):
        super().__init__(in_channels, num_classes, depth, widen, dropout, scales)

    def make_stem(self, c_in: int, c_out: int) -> nn.Module:
        return self.make_conv(c_in, c_out, 3, 1)

    def make_conv(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> nn.Module:
        return ScaleInvariantConv2d(c_in, c_out, kernel_size, self.scales, stride=stride,
                                    bias=False)

    def make_norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels)

    def make_shortcut(self, c_in: int, c_out: int, stride: int) -> nn.Module:
        return conv1x1_shortcut(c_in, c_out, stride)
