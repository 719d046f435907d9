"""SESN model assembly: the MNIST scalar / vector networks and the STL-10 WRN-16-8.

Layers live in :mod:`methods.sesn.layers`; this module only wires them into the
paper's networks (Sosnovik, Szmaja & Smeulders, ICLR 2020) and resolves the
published hyper-parameters (:data:`MNIST_PUBLISHED`, :data:`STL10_SCALES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from scaleqbench.methods.common import (
    BlockStackNet,
    MaxOverScales,
    PreActWideBlock,
    ScalePooledWRN,
    init_norms_and_linear_biases,
    mnist_head,
    wrn_blocks_per_group,
    wrn_groups,
)
from scaleqbench.methods.scale_axis import ScaleAxis
from scaleqbench.methods.sesn.layers import (
    ScaleBatchNorm,
    SESConv1x1,
    SESConvHH,
    SESLift,
    SpatialMaxPoolPerScale,
)

__all__ = ["MNIST_PUBLISHED", "STL10_SCALES", "SESNMnist", "SESNWideResNet", "mnist_hparams"]

#: Published MNIST configurations, effective size 7, max order 4, basis B:
#: (variant, "+") -> scales, mult, kernel size. The scales are ``s0 * 3^(i/(S-1))``
#: rounded to two decimals, as in the paper's appendix.
MNIST_PUBLISHED: dict[tuple[str, bool], dict[str, Any]] = {
    ("scalar", False): dict(scales=(1.7, 2.45, 3.54, 5.1), mult=1.5, kernel_size=15),
    ("scalar", True): dict(scales=(1.5, 2.16, 3.12, 4.5), mult=1.4, kernel_size=13),
    ("vector", False): dict(scales=(1.5, 2.6, 4.5), mult=1.5, kernel_size=13),
    ("vector", True): dict(scales=(1.5, 2.6, 4.5), mult=1.4, kernel_size=15),
}

#: STL-10 WRN-16-8 SESN scales (variants A and B): 0.9 * 1.41^i, i = 0, 1, 2.
STL10_SCALES: tuple[float, ...] = tuple(0.9 * 1.41 ** i for i in range(3))
#: Variant C starts its scales at 1.1 instead.
STL10_SCALES_C: tuple[float, ...] = tuple(1.1 * 1.41 ** i for i in range(3))


def mnist_hparams(variant: str, plus: bool) -> dict[str, Any]:
    """The published (scales, mult, kernel_size) of an MNIST variant."""
    key = (variant, bool(plus))
    if key not in MNIST_PUBLISHED:
        raise ValueError(f"unknown SESN variant {variant!r}; use 'scalar' or 'vector'")
    return dict(MNIST_PUBLISHED[key])


class SESNBlock(nn.Module):
    """One MNIST block: SES conv -> [scale max] -> ReLU -> [2x2 max-pool] -> BN (the paper's order).

    ``lift`` picks Z2 -> H (input ``(B, C, H, W)``) or H -> H (input on H);
    ``project`` takes the max over scales, making the output a plain
    ``(B, C', H', W')`` map that is (approximately) invariant to the scale
    shifts of the conv, i.e. equivariant to dilations of the input. Otherwise
    the output stays on H and is equivariant to dilations as scale shifts.
    """

    def __init__(self, c_in: int, c_out: int, *, lift: bool, project: bool, pool: bool,
                 conv_kw: dict[str, Any], scale_depth: int = 1):
        super().__init__()
        if lift:
            self.conv: nn.Module = SESLift(c_in, c_out, **conv_kw)
        else:
            self.conv = SESConvHH(c_in, c_out, scale_depth=scale_depth, **conv_kw)
        self.project = MaxOverScales() if project else None
        # not in place: the scale max before it may need its output for the backward pass
        self.act = nn.ReLU()
        if pool:
            self.pool: nn.Module | None = (nn.MaxPool2d(2, ceil_mode=True) if project
                                           else SpatialMaxPoolPerScale(2))
        else:
            self.pool = None
        self.bn = nn.BatchNorm2d(c_out) if project else ScaleBatchNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.project is not None:
            x = self.project(x)
        x = self.act(x)
        if self.pool is not None:
            x = self.pool(x)
        return self.bn(x)


class SESNMnist(BlockStackNet):
    """SESN for MNIST: three SES conv blocks (32/63/95), basis B, effective size 7.

    ``variant="scalar"``: every block lifts its (plain) input to all scales and
    takes the max over scales right away -- each block is Z2 -> H -> Z2.
    ``variant="vector"``: block 1 lifts, blocks 2 and 3 are H -> H scale
    convolutions (scale-kernel depth ``scale_depth``), and the max over scales
    comes only at the end of block 3.

    With ``scale_depth=1`` the parameter count equals that of the ``cnn``
    baseline with the same channels and head (the conv coefficients are
    ``C' x C x eff^2``, one bias per channel, starting at zero as in the
    authors' code).

    Departure from the authors' model (ISosnovik/sesn, ``models/mnist_ses.py``),
    the one the protocol forces: their last block ends with a 4x4 max-pool
    (padding 2) that leaves a 2x2 map at 28 px, flattened into
    ``Linear(4 * C3, hidden)``; a fixed flatten accepts one input size only.
    Here the last block keeps its map and the head takes its global max, so
    every size (8...28) is accepted and the first Linear reads ``C3`` features:
    ``3 * C3 * hidden`` parameters fewer (72,960 at 95 / 256: 421,589 against
    the published 494,549; tests/test_sesn_reference.py pins it). The MLP's
    first Linear has no bias, as theirs (BatchNorm1d follows it). Their 2x2
    max-pools drop an odd last row; ours keep it (``ceil_mode``), the same at
    28 px.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, variant: str = "scalar",
                 channels: Sequence[int] = (32, 63, 95), scales: Sequence[float] = (1.7, 2.45, 3.54, 5.1),
                 kernel_size: int = 15, effective_size: int = 7, basis: str = "B",
                 mult: float = 1.5, max_order: int = 4, scale_depth: int = 1,
                 hidden: int = 256, dropout: float = 0.7):
        super().__init__()
        if variant not in ("scalar", "vector"):
            raise ValueError(f"unknown SESN variant {variant!r}; use 'scalar' or 'vector'")
        self.variant = variant
        conv_kw = dict(kernel_size=kernel_size, effective_size=effective_size, scales=scales,
                       basis=basis, mult=mult, max_order=max_order, bias=True)
        blocks, c_prev = [], in_channels
        for i, c in enumerate(channels):
            last = i == len(channels) - 1
            scalar = variant == "scalar"
            blocks.append(SESNBlock(c_prev, c, lift=scalar or i == 0, project=scalar or last,
                                    pool=not last, conv_kw=conv_kw, scale_depth=scale_depth))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.head = mnist_head(c_prev, hidden, num_classes, dropout)

    def scale_axes(self) -> dict[str, ScaleAxis]:
        """The blocks whose output keeps the scale axis (the vector variant's blocks before
        the max over scales), with their basis scales; the scalar variant declares none."""
        return {f"block{i + 1}": ScaleAxis(block.conv.kernel.scales)
                for i, block in enumerate(self.blocks) if block.project is None}



class SESWideBlock(PreActWideBlock):
    """Pre-activation WRN basic block on H: BN-ReLU-conv-BN-ReLU-dropout-conv plus shortcut.

    ``relift=True`` (SESN-B's first conv of groups 2 and 3): the max over
    scales followed by a fresh Z2 -> H lift replaces the first H -> H conv,
    which lets the block re-select the scale of every feature. Equivariant to
    dilations as scale shifts (up to discretisation and the ends of the
    scale axis) and to translations by multiples of ``stride``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float,
                 conv_kw: dict[str, Any], relift: bool = False, scale_depth: int = 1):
        super().__init__()
        self.bn1 = ScaleBatchNorm(c_in)
        if relift:
            self.conv1: nn.Module = nn.Sequential(
                MaxOverScales(), SESLift(c_in, c_out, stride=stride, bias=False, **conv_kw))
        else:
            self.conv1 = SESConvHH(c_in, c_out, scale_depth=scale_depth, stride=stride,
                                   bias=False, **conv_kw)
        self.bn2 = ScaleBatchNorm(c_out)
        self.conv2 = SESConvHH(c_out, c_out, stride=1, bias=False, **conv_kw)
        self.dropout = dropout
        self.shortcut = (SESConv1x1(c_in, c_out, stride) if c_in != c_out or stride != 1
                         else None)


class SESNWideResNet(ScalePooledWRN):
    """WRN-16-8 with SES convolutions (k 7, effective 3, basis A, 3 scales) for STL-10.

    ``wrn_variant``: ``"A"`` keeps the scale axis to the end; ``"B"`` (the
    published default here) pools over scales and re-lifts at the first conv
    of groups 2 and 3; ``"C"`` keeps the scale axis, uses scale-kernel depth 2
    in the first conv of group 1 and scales ``1.1 * 1.41^i``. The head takes
    the max over scales, BN, ReLU, global average pooling and a Linear layer,
    as in the paper, so any input size (96; 49...97) is accepted as published.
    The same network, parameters and initialisation as the authors'
    ``wrn_16_8_ses_{a,b,c}`` (ISosnovik/sesn, ``models/stl_ses.py``;
    tests/test_sesn_reference.py runs both at width 2 on the same weights).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 16,
                 widen: int = 8, dropout: float = 0.3, wrn_variant: str = "B",
                 scales: Sequence[float] | None = None, kernel_size: int = 7,
                 effective_size: int = 3, basis: str = "A", mult: float = 1.5, max_order: int = 4):
        super().__init__()
        n = wrn_blocks_per_group(depth)
        wrn_variant = wrn_variant.upper()
        if wrn_variant not in ("A", "B", "C"):
            raise ValueError(f"unknown SESN WRN variant {wrn_variant!r}; use 'A', 'B' or 'C'")
        if scales is None:
            scales = STL10_SCALES_C if wrn_variant == "C" else STL10_SCALES
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        conv_kw = dict(kernel_size=kernel_size, effective_size=effective_size, scales=scales,
                       basis=basis, mult=mult, max_order=max_order)
        self.stem = SESLift(in_channels, widths[0], bias=False, **conv_kw)
        self.groups = wrn_groups(widths, n, lambda g, i, c_in, c_out, stride: SESWideBlock(
            c_in, c_out, stride=stride, dropout=dropout, conv_kw=conv_kw,
            relift=i == 0 and wrn_variant == "B" and g > 0,
            scale_depth=2 if i == 0 and wrn_variant == "C" and g == 0 else 1))
        self.project = MaxOverScales()
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.scales = tuple(float(s) for s in scales)
        self._init()

    def scale_axes(self) -> dict[str, ScaleAxis]:
        """The stem and every group keep the scale axis (variant B re-lifts onto the same
        scales after its max over scales); ``proj`` is pooled over scales."""
        return {name: ScaleAxis(self.scales) for name in ("stem", "group1", "group2", "group3")}

    def _init(self) -> None:
        # WRN's He-normal initialisation over the fan-out of the coefficients (the 1x1
        # shortcuts too, as in the authors' STL-10 model)
        for m in self.modules():
            if isinstance(m, (SESLift, SESConvHH)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, SESConv1x1):
                nn.init.kaiming_normal_(m.conv.weight, mode="fan_out", nonlinearity="relu")
        init_norms_and_linear_biases(self, (nn.BatchNorm2d, nn.BatchNorm3d))
