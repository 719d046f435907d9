"""DISCO model assembly: the MNIST network and the STL-10 WRN-16-8 of the paper.

Layers live in :mod:`methods.disco.layers` (SESN's convolutions with the DISCO
basis) and :mod:`methods.sesn.layers` (scale pooling, BN, 1x1); this module
wires them as the authors' published models do and declares the scale axis of
each feature map (:class:`~methods.scale_axis.ScaleAxis`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.common import (
    MaxOverScales,
    PreActWideBlock,
    ScalePooledWRN,
    init_norms_and_linear_biases,
    wrn_blocks_per_group,
    wrn_groups,
)
from scaleqbench.methods.common import fold_scale_axis as _fold
from scaleqbench.methods.disco.layers import DiscoConvHH, DiscoLift, ScaleAvgPool
from scaleqbench.methods.scale_axis import ScaleAxis
from scaleqbench.methods.sesn.layers import ScaleBatchNorm, SESConv1x1, SpatialMaxPoolPerScale

__all__ = ["DiscoMnist", "DiscoWideResNet", "ScaleAxis"]


class DiscoMnist(nn.Module):
    """DISCO for MNIST: optional 2x upsampling, three DISCO convs (32/63/95), scale max, MLP.

    As published: the input is upsampled 2x (nearest); block 1 lifts (Z2 -> H),
    blocks 2-3 are H -> H convs of scale depth 1; blocks 1-2 end in ReLU, 2x2
    average pooling and BN (statistics shared by the scales); after block 3 the
    max over scales and a ReLU, then BN, ``Linear(., hidden, bias=False)``, BN,
    ReLU, dropout and the classifier. Biases start at zero, coefficients
    Kaiming-uniform (the authors' initialisation).

    Departure from the paper: the head takes a global max over space instead of
    a 7x7 max-pool (stride 1), a 2x2 average pool (stride 4) and the flatten of a
    fixed 2x2 map, so that every input size (8...28) is accepted; the first head
    Linear therefore has ``C3`` inputs instead of ``4 * C3`` (``3 * C3 * hidden``
    fewer parameters). Pooling uses ``ceil_mode`` so odd sizes keep their last row.
    """

    def __init__(self, basis: torch.Tensor, scales: Sequence[float], in_channels: int = 1,
                 num_classes: int = 10, channels: Sequence[int] = (32, 63, 95),
                 hidden: int = 256, dropout: float = 0.7, upsample: bool = True):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        c1, c2, c3 = channels
        self.upsample = nn.Upsample(scale_factor=2) if upsample else nn.Identity()
        self.conv1 = DiscoLift(in_channels, c1, basis, scales)
        self.conv2 = DiscoConvHH(c1, c2, basis, scales)
        self.conv3 = DiscoConvHH(c2, c3, basis, scales)
        self.post1 = nn.Sequential(nn.ReLU(), ScaleAvgPool(2), ScaleBatchNorm(c1))
        self.post2 = nn.Sequential(nn.ReLU(), ScaleAvgPool(2), ScaleBatchNorm(c2))
        self.project = MaxOverScales()
        self.bn = nn.BatchNorm1d(c3)
        self.head = nn.Sequential(
            nn.Linear(c3, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        for conv in (self.conv1, self.conv2, self.conv3):
            nn.init.zeros_(conv.bias)

    def scale_axes(self) -> dict[str, ScaleAxis]:
        """The features that carry a scale axis (:meth:`features`): blocks 1-3."""
        return {name: ScaleAxis(self.scales) for name in ("block1", "block2", "block3")}

    def _blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        b1 = self.post1(self.conv1(self.upsample(x)))
        b2 = self.post2(self.conv2(b1))
        b3 = self.conv3(b2)
        return [b1, b2, b3, F.relu(self.project(b3))]

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Blocks 1-3 (scale axis folded channel-major) and the scale-pooled map ``proj``."""
        maps = self._blocks(x)
        return {"block1": _fold(maps[0]), "block2": _fold(maps[1]), "block3": _fold(maps[2]),
                "proj": maps[3]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._blocks(x)[-1]
        return self.head(self.bn(torch.amax(y, dim=(-2, -1))))


class DiscoWideBlock(PreActWideBlock):
    """Pre-activation WRN block on H, as in the authors' DISCO WRN.

    BN-ReLU-conv1-[2x2 max-pool]-BN-ReLU-dropout-conv2 plus a shortcut (a 1x1
    conv, max-pooled alike, when the width or resolution changes). ``relift``:
    conv1 is the max over scales followed by a fresh lift (groups 2 and 3).
    Down-sampling is a max-pool after a stride-1 conv, not a strided conv.
    Equivariant to down-scaling by scale ratios as scale shifts (up to the
    basis residual and the ends of the axis) and to translations by multiples
    of the pooling.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float,
                 basis: torch.Tensor, scales: Sequence[float], relift: bool):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.bn1 = ScaleBatchNorm(c_in)
        conv1: list[nn.Module] = (
            [MaxOverScales(), DiscoLift(c_in, c_out, basis, scales, bias=False)] if relift
            else [DiscoConvHH(c_in, c_out, basis, scales, bias=False)])
        if stride == 2:
            conv1.append(SpatialMaxPoolPerScale(2))
        self.conv1 = nn.Sequential(*conv1)
        self.bn2 = ScaleBatchNorm(c_out)
        self.conv2 = DiscoConvHH(c_out, c_out, basis, scales, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Module | None = None
        if c_in != c_out:
            short: list[nn.Module] = [SESConv1x1(c_in, c_out)]
            if stride == 2:
                short.append(SpatialMaxPoolPerScale(2))
            self.shortcut = nn.Sequential(*short)
        elif stride != 1:
            raise ValueError("a block that keeps its width must keep its resolution")


class DiscoWideResNet(ScalePooledWRN):
    """WRN-16-8 with DISCO convs (k 5, eff 3, scales 1/1.41/2, basis A) for STL-10, as published.

    Lift stem, three groups of ``(depth - 4) / 6`` blocks (widths 128/256/512,
    groups 2 and 3 start by re-lifting after a max over scales and halve the
    resolution), then the max over scales, BN, ReLU, global average pooling and
    a Linear classifier: any input size is accepted as published. Initialised
    as the authors': coefficients ``N(0, 2 / fan_out)``, BN ``(1, 0)``, zero
    Linear bias.
    """

    def __init__(self, basis: torch.Tensor, scales: Sequence[float], in_channels: int = 3,
                 num_classes: int = 10, depth: int = 16, widen: int = 8, dropout: float = 0.3):
        super().__init__()
        n = wrn_blocks_per_group(depth)
        self.scales = tuple(float(s) for s in scales)
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = DiscoLift(in_channels, widths[0], basis, scales, bias=False)
        self.groups = wrn_groups(widths, n, lambda g, i, c_in, c_out, stride: DiscoWideBlock(
            c_in, c_out, stride=stride, dropout=dropout, basis=basis, scales=scales,
            relift=i == 0 and g > 0))
        self.project = MaxOverScales()
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, (DiscoLift, DiscoConvHH)):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 * m.in_channels / m.weight.numel()))
            elif isinstance(m, SESConv1x1):
                nn.init.normal_(m.conv.weight, 0.0, math.sqrt(2.0 / m.conv.out_channels))
        init_norms_and_linear_biases(self, (nn.BatchNorm2d, nn.BatchNorm1d))

    def scale_axes(self) -> dict[str, ScaleAxis]:
        """The features that carry a scale axis (:meth:`features`): the stem and the groups."""
        return {name: ScaleAxis(self.scales) for name in ("stem", "group1", "group2", "group3")}
