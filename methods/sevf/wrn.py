"""SEVF wide ResNets for STL-10 (WRN-16-8), built as the SESN benchmark builds its STL-10 models.

The SESN benchmark publishes no STL-10 SEVF model. Its other ``stl_*`` models
(Kanazawa, Xu, SS-CNN, DSS, SESN) all take the pre-activation WRN-16-8
(dropout 0.3, global average pooling, a linear classifier) and replace every
3x3 convolution by the method's convolution, keeping the 1x1 shortcuts; where
the method's convolution holds more parameters, the widths shrink (SS-CNN:
11/88/176/352 instead of 16/128/256/512). We do the same:

* scalar (:class:`SEVFWideResNet`, ``variant="scalar"``): every 3x3 conv is an
  :class:`~methods.sevf.layers.SEVFScalarConv` (same parameters as a plain 3x3
  conv), widths 16/128/256/512: exactly the plain WRN-16-8's parameter count;
* vector (``variant="vector"``): the stem lifts to a vector field, every
  other 3x3 conv is a vector :class:`~methods.sevf.layers.SEVFConv` (two filters
  per pair of channels), widths 11/88/176/352 (the repository's narrowing for a
  roughly 2x heavier convolution). The field stays a vector field through the
  residual sums: BN is :class:`~methods.sevf.vector_field.VectorBatchNorm`, dropout
  drops whole vectors, shortcuts mix ``u`` and ``v`` alike, and there is no
  separate ReLU (the SEVF conv's ``relu(max)`` is the nonlinearity). The head
  takes the magnitudes.

Scales: three per conv, ``0.5, 1, 2`` (base 2), the scales of the benchmark's
STL-10 Kanazawa model, which resamples its input in the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.common import (
    PreActWRN,
    WideBlock,
    he_normal_conv2d,
    init_norms_and_linear_biases,
    wrn_blocks_per_group,
    wrn_groups,
)
from scaleqbench.methods.sevf.layers import SEVFConv, SEVFLift, SEVFScalarConv
from scaleqbench.methods.sevf.vector_field import (
    VectorBatchNorm,
    VectorConv1x1,
    VectorDropout,
    magnitude,
)

__all__ = ["STL10_GRID", "SEVFWideResNet", "VectorWideBlock"]

#: three scales 0.5 / 1 / 2 (the benchmark's STL-10 Kanazawa scales)
STL10_GRID = dict(n_small=2, n_big=1, base=2.0, angle_range=2 * math.pi / 3)
WIDTHS = {"scalar": (16, 16, 32, 64), "vector": (11, 11, 22, 44)}  # x widen, except the stem


def _sevf_conv(conv: type[nn.Module], grid: dict) -> Callable[[int, int, int], nn.Module]:
    """The WRN's 3x3 convolution: ``conv`` (a scalar or vector SEVF conv) on ``grid``."""
    return lambda c_in, c_out, stride: conv(c_in, c_out, 3, stride=stride, padding=1, **grid)


def _scalar_block(c_in: int, c_out: int, stride: int, dropout: float, grid: dict) -> nn.Module:
    """Pre-activation WRN block of SEVF scalar convs: BN-ReLU-conv-BN-ReLU-dropout-conv + shortcut.

    Every part acts on plain maps; the SEVF convs are locally invariant to zooms
    by the grid's base, the rest is pointwise or 1x1, so the block is
    approximately zoom-equivariant; translation-equivariant for multiples of ``stride``.
    """
    return WideBlock(c_in, c_out, stride, dropout, conv=_sevf_conv(SEVFScalarConv, grid),
                     shortcut_first=True)


class VectorWideBlock(WideBlock):
    """Pre-activation WRN block on vector fields: VBN-conv-VBN-dropout-conv + shortcut.

    ``(B, C, 2, H, W) -> (B, C', 2, H', W')``. Every part commutes with rotating
    all vectors by one angle (VBN rescales lengths, dropout masks whole vectors,
    the shortcut mixes ``u`` and ``v`` alike, sums are linear), and the SEVF
    convs turn a zoom by the base into that rotation, so the block is
    zoom-equivariant up to resampling and the ends of the scale grid. No
    activation of its own: the SEVF conv's ``relu(max)`` is the nonlinearity.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, grid: dict):
        super().__init__(c_in, c_out, stride, dropout, conv=_sevf_conv(SEVFConv, grid),
                         norm=VectorBatchNorm, shortcut=VectorConv1x1, shortcut_first=True)
        self.drop = VectorDropout(dropout)

    def _activation(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _dropout(self, y: torch.Tensor) -> torch.Tensor:
        return self.drop(y)


class SEVFWideResNet(PreActWRN):
    """WRN-``depth``-``widen`` with SEVF convolutions (module docstring); global average-pool head.

    The head (BN-ReLU or VBN-magnitude, global average, linear) accepts any
    input size (96; 49...97), as the published STL-10 models' fixed 24x24
    average pool does at 96. ``features``: the stem and each group's output (vector
    fields folded to ``(B, 2C, H, W)``), then ``proj``: the map the head averages.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, variant: str = "vector",
                 depth: int = 16, widen: int = 8, dropout: float = 0.3,
                 n_small: int = STL10_GRID["n_small"], n_big: int = STL10_GRID["n_big"],
                 base: float = STL10_GRID["base"], angle_range: float = STL10_GRID["angle_range"]):
        super().__init__()
        n = wrn_blocks_per_group(depth)
        if variant not in WIDTHS:
            raise ValueError(f"SEVF variant must be 'vector' or 'scalar', got {variant!r}")
        self.variant = variant
        grid = dict(n_small=n_small, n_big=n_big, base=base, angle_range=angle_range)
        w = WIDTHS[variant]
        widths = [w[0], w[1] * widen, w[2] * widen, w[3] * widen]
        vector = variant == "vector"
        self.stem = (SEVFLift if vector else SEVFScalarConv)(in_channels, widths[0], 3, padding=1,
                                                             **grid)
        block = VectorWideBlock if vector else _scalar_block
        self.groups = wrn_groups(widths, n, lambda g, i, c_in, c_out, stride: block(
            c_in, c_out, stride, dropout, grid))
        self.bn = VectorBatchNorm(widths[3]) if vector else nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        he_normal_conv2d(self)  # the WRN initialisation of the plain layers
        init_norms_and_linear_biases(self, (nn.BatchNorm2d,))

    def final_map(self, x: torch.Tensor) -> torch.Tensor:
        return magnitude(self.bn(x)) if self.variant == "vector" else F.relu(self.bn(x))
