"""DSS wide ResNet for STL-10 (WRN-16-8 with scale convolutions), the paper's STL-10 model.

A pre-activation wide ResNet (Zagoruyko & Komodakis, 2016) whose 3x3
convolutions are DSS scale convolutions over a 4-scale discrete Gaussian
scale-space (base 2, zero scale 0.5). The first convolution of groups 1 and 2
reads two scales at once (scale-kernel depth 2, computed in "valid" mode along
scale), so the scale axis shrinks 4 -> 3 -> 2 over the network, as in the
published model; the widths (16, 128, 240, 512) are the published ones, the
middle group narrowed to pay for its deeper scale kernels.

The published model is the SESN benchmark's ``wrn_16_8_dss`` (ISosnovik/sesn,
``models/stl_dss.py``). Its depth-2 convolutions run in "same" mode along
scale, truncating the kernel at the last scale, and the next convolution then
drops that scale: the scales it keeps are exactly our "valid" ones, so the two
networks compute the same function (tests/test_dss_reference.py runs both at
width 2 on the same weights), with the same 10,939,482 parameters at width 8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.common import (
    MaxOverScales,
    init_norms_and_linear_biases,
    wrn_blocks_per_group,
)
from scaleqbench.methods.dss.layers import ScaleBatchNorm, ScaleConv, dss_scale_axis, fold_scales
from scaleqbench.methods.scale_axis import ScaleAxis
from scaleqbench.methods.dss.scale_space import ScaleSpaceLift

__all__ = ["DSSWideResNet", "ScaleBasicBlock"]


class ScaleBasicBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv(depth d, stride)-BN-ReLU-[dropout]-conv.

    ``(B, C_in, S, H, W) -> (B, C_out, S - d + 1, H / stride, W / stride)``. The
    shortcut reads the first ``S - d + 1`` input scales (those the residual branch
    keeps): as they are when channels and stride allow, else through a 1x1
    convolution of scale depth 1 and the block's stride, as in the published
    model (a depth-``d`` 1x1 shortcut would add ``(d - 1) C_in C_out`` parameters).
    Every part is equivariant to shifts along the scale axis and translation-
    equivariant; strided convolutions make 2x down-sampling equivariance approximate.
    """

    def __init__(self, c_in: int, c_out: int, n_scales: int, stride: int, depth: int,
                 dropout: float, base: int, init: str):
        super().__init__()
        self.bn1 = ScaleBatchNorm(c_in)
        self.conv1 = ScaleConv(c_in, c_out, 3, n_scales, depth=depth, base=base,
                               stride=stride, init=init)
        self.out_scales = self.conv1.out_scales
        self.bn2 = ScaleBatchNorm(c_out)
        self.conv2 = ScaleConv(c_out, c_out, 3, self.out_scales, depth=1, base=base, init=init)
        self.dropout = dropout
        self.shortcut: nn.Module | None = None
        if c_in != c_out or stride != 1:
            self.shortcut = ScaleConv(c_in, c_out, 1, self.out_scales, depth=1, base=base,
                                      stride=stride, init=init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        # as in the usual WRN, a projected shortcut reads the pre-activated input; a
        # depth-d first conv drops the last d - 1 scales, so the shortcut drops them too
        keep = self.out_scales
        skip = x[:, :, :keep] if self.shortcut is None else self.shortcut(pre[:, :, :keep])
        return skip + out


class DSSWideResNet(nn.Module):
    """WRN-``depth``-``k`` with DSS layers; global average-pool head over the scale-max map.

    Groups of ``(depth - 4) / 6`` blocks at strides 1, 2, 2; ``scale_depths``
    gives the scale depth of each group's first convolution (the rest use 1).
    Head: BN -> ReLU -> max over scales -> global average over space -> linear.
    Departure from the paper: the spatial average is global (``adaptive``)
    rather than a fixed 24x24 window, so sizes other than 96 (49...97) work.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 16,
                 widths: tuple[int, int, int, int] = (16, 128, 240, 512),
                 n_scales: int = 4, zero_scale: float = 0.5, base: int = 2,
                 scale_depths: tuple[int, int, int] = (2, 2, 1), dropout: float = 0.3,
                 init: str = "delta"):
        super().__init__()
        n_blocks = wrn_blocks_per_group(depth)
        self.lift = ScaleSpaceLift(n_scales, zero_scale, base)
        self.conv1 = ScaleConv(in_channels, widths[0], 3, n_scales, depth=1, base=base,
                               init=init)
        groups = []
        c_prev, s_prev = widths[0], n_scales
        for g, (c, stride) in enumerate(zip(widths[1:], (1, 2, 2))):
            blocks = []
            for i in range(n_blocks):
                block = ScaleBasicBlock(c_prev, c, s_prev, stride if i == 0 else 1,
                                        scale_depths[g] if i == 0 else 1, dropout, base, init)
                blocks.append(block)
                c_prev, s_prev = c, block.out_scales
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.ModuleList(groups)
        self.bn = ScaleBatchNorm(c_prev)
        self.scale_pool = MaxOverScales(share_ties=True)
        self.fc = nn.Linear(c_prev, num_classes)
        init_norms_and_linear_biases(self, (nn.BatchNorm3d,))

    def _maps(self, x: torch.Tensor):
        x = self.conv1(self.lift(x))
        for g, group in enumerate(self.groups):
            x = group(x)
            yield f"block{g + 1}", x

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale_pool(F.relu(self.bn(x)))

    def scale_axes(self) -> dict[str, ScaleAxis]:
        """Every group's output carries the scale axis (what its last block keeps of it);
        ``proj`` is pooled over scales."""
        return {f"block{g + 1}": dss_scale_axis(group[-1].conv2.base, group[-1].out_scales)
                for g, group in enumerate(self.groups)}

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each group's output with its scale axis folded into channels, ``(B, C * S, H', W')``,
        then ``proj``: the scale-projected map the head averages (as `sesn`'s WRN reports)."""
        out = {}
        for k, v in self._maps(x):
            out[k] = fold_scales(v)
        out["proj"] = self._project(v)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, x in self._maps(x):
            pass
        return self.fc(self._project(x).mean(dim=(-2, -1)))
