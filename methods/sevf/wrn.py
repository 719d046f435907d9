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
  residual sums: BN is :class:`~methods.sevf.layers.VectorBatchNorm`, dropout
  drops whole vectors, shortcuts mix ``u`` and ``v`` alike, and there is no
  separate ReLU (the SEVF conv's ``relu(max)`` is the nonlinearity). The head
  takes the magnitudes.

Scales: three per conv, ``0.5, 1, 2`` (base 2), the scales of the benchmark's
STL-10 Kanazawa model, which resamples its input in the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.sevf.layers import (
    SEVFConv,
    SEVFLift,
    SEVFScalarConv,
    VectorBatchNorm,
    VectorConv1x1,
    VectorDropout,
    fold,
    magnitude,
)

__all__ = ["STL10_GRID", "SEVFWideResNet"]

#: three scales 0.5 / 1 / 2 (the benchmark's STL-10 Kanazawa scales)
STL10_GRID = dict(n_small=2, n_big=1, base=2.0, angle_range=2 * math.pi / 3)
WIDTHS = {"scalar": (16, 16, 32, 64), "vector": (11, 11, 22, 44)}  # x widen, except the stem


class ScalarWideBlock(nn.Module):
    """Pre-activation WRN block, SEVF scalar convs: BN-ReLU-conv-BN-ReLU-dropout-conv + shortcut.

    Every part acts on plain maps; the SEVF convs are locally invariant to zooms
    by the grid's base, the rest is pointwise or 1x1, so the block is
    approximately zoom-equivariant; translation-equivariant for multiples of ``stride``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, grid: dict):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = SEVFScalarConv(c_in, c_out, 3, stride=stride, padding=1, **grid)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = SEVFScalarConv(c_out, c_out, 3, padding=1, **grid)
        self.dropout = dropout
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
                         if c_in != c_out or stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        y = F.relu(self.bn2(self.conv1(o)))
        if self.dropout > 0:
            y = F.dropout(y, p=self.dropout, training=self.training)
        return skip + self.conv2(y)


class VectorWideBlock(nn.Module):
    """Pre-activation WRN block on vector fields: VBN-conv-VBN-dropout-conv + shortcut.

    ``(B, C, 2, H, W) -> (B, C', 2, H', W')``. Every part commutes with rotating
    all vectors by one angle (VBN rescales lengths, dropout masks whole vectors,
    the shortcut mixes ``u`` and ``v`` alike, sums are linear), and the SEVF
    convs turn a zoom by the base into that rotation, so the block is
    zoom-equivariant up to resampling and the ends of the scale grid.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, grid: dict):
        super().__init__()
        self.bn1 = VectorBatchNorm(c_in)
        self.conv1 = SEVFConv(c_in, c_out, 3, stride=stride, padding=1, **grid)
        self.bn2 = VectorBatchNorm(c_out)
        self.drop = VectorDropout(dropout)
        self.conv2 = SEVFConv(c_out, c_out, 3, padding=1, **grid)
        self.shortcut = (VectorConv1x1(c_in, c_out, stride)
                         if c_in != c_out or stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.bn1(x)
        skip = x if self.shortcut is None else self.shortcut(o)
        return skip + self.conv2(self.drop(self.bn2(self.conv1(o))))


class SEVFWideResNet(nn.Module):
    """WRN-``depth``-``widen`` with SEVF convolutions (module docstring); global average-pool head.

    The head (BN-ReLU or VBN-magnitude, global average, linear) accepts any
    input size (96; 49...97), as the published STL-10 models' fixed 24x24
    average pool does at 96.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, variant: str = "vector",
                 depth: int = 16, widen: int = 8, dropout: float = 0.3,
                 n_small: int = STL10_GRID["n_small"], n_big: int = STL10_GRID["n_big"],
                 base: float = STL10_GRID["base"], angle_range: float = STL10_GRID["angle_range"]):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        if variant not in WIDTHS:
            raise ValueError(f"SEVF variant must be 'vector' or 'scalar', got {variant!r}")
        self.variant = variant
        grid = dict(n_small=n_small, n_big=n_big, base=base, angle_range=angle_range)
        w = WIDTHS[variant]
        widths = [w[0], w[1] * widen, w[2] * widen, w[3] * widen]
        vector = variant == "vector"
        self.stem = (SEVFLift if vector else SEVFScalarConv)(in_channels, widths[0], 3, padding=1,
                                                             **grid)
        block = VectorWideBlock if vector else ScalarWideBlock
        n = (depth - 4) // 6
        groups = []
        for g in range(3):
            groups.append(nn.Sequential(*[
                block(widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                      (1 if g == 0 else 2) if i == 0 else 1, dropout, grid) for i in range(n)]))
        self.groups = nn.ModuleList(groups)
        self.bn = VectorBatchNorm(widths[3]) if vector else nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():  # the WRN initialisation of the plain layers
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return magnitude(self.bn(x)) if self.variant == "vector" else F.relu(self.bn(x))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stem and each group's output (vector fields folded to ``(B, 2C, H, W)``), then
        ``proj``: the map the head averages."""
        x = self.stem(x)
        out = {"stem": fold(x) if x.dim() == 5 else x}
        for g, group in enumerate(self.groups):
            x = group(x)
            out[f"group{g + 1}"] = fold(x) if x.dim() == 5 else x
        out["proj"] = self._project(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for group in self.groups:
            x = group(x)
        return self.fc(self._project(x).mean(dim=(-2, -1)))
