"""SS-CNN model assembly: the MNIST network and the STL-10 WRN-16-8 (SESN benchmark's configs).

Layers live in :mod:`methods.ss_cnn.layers`. The published models are the SESN
benchmark's ``mnist_ss_28`` (three layers 30/60/90, base size 11, kernel sizes
5...13, frequencies 0.5/1/2) and ``wrn_16_8_ss`` (every 3x3 conv of a
pre-activation WRN-16-8 replaced by a scale-steerable conv with base size 3,
sizes 3/5/7, frequency 1, no ReLU; widths narrowed to 11/88/176/352 to pay for
its 18 coefficients per pair of channels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.ss_cnn.layers import DEFAULT_PHIS, ScaleSteerableConv

__all__ = ["SSCNNMnist", "SSCNNWideResNet", "SSWideBlock"]


class SSCNNMnist(nn.Module):
    """SS-CNN for MNIST: three scale-steerable layers (max over kernel sizes, ReLU), each of the
    first two followed by 2x2 max-pool and BN (the published order), then the MLP head.

    Departures from the published model (pinned in ``tests/test_ss_cnn.py``):
    the head takes a global max over space, then BN, instead of a 4x4 max-pool
    (padding 2) of the 7x7 map, BN and flattening the 2x2 result, so every input
    size (8...28) is accepted; the first FC layer reads ``C3`` instead of
    ``4 * C3`` features (``3 * C3 * hidden`` = 69,120 parameters fewer). Two
    parameters of the reference code that its forward pass never uses are left
    out: a ``(C', C)`` tensor per layer (``const_real``, 7,230 in all) and a
    batch norm (``bn3``, 180). Max-pools use ``ceil_mode``; at 28 px that
    changes nothing.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 channels: Sequence[int] = (30, 60, 90), base_size: int = 11,
                 sizes: Sequence[int] = (5, 7, 9, 11, 13), ks: Sequence[float] = (0.5, 1.0, 2.0),
                 phis: Sequence[float] = DEFAULT_PHIS, sigma_phi: float = math.pi / 16,
                 phase: float = -math.pi / 4, hidden: int = 256, dropout: float = 0.7):
        super().__init__()
        conv_kw = dict(base_size=base_size, sizes=sizes, ks=ks, phis=phis, sigma_phi=sigma_phi,
                       phase=phase, relu=True)
        blocks, c_prev = [], in_channels
        for i, c in enumerate(channels):
            layers: list[nn.Module] = [ScaleSteerableConv(c_prev, c, **conv_kw)]
            if i < len(channels) - 1:
                layers += [nn.MaxPool2d(2, ceil_mode=True), nn.BatchNorm2d(c)]
            blocks.append(nn.Sequential(*layers))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.BatchNorm1d(c_prev), nn.Linear(c_prev, hidden), nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each block's output ``(B, C', H', W')`` (no scale axis: the sizes are max-pooled)."""
        out = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            out[f"block{i + 1}"] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(torch.amax(x, dim=(-2, -1)))


class SSWideBlock(nn.Module):
    """Pre-activation WRN block of scale-steerable convs: BN-ReLU-conv-BN-ReLU-dropout-conv + skip.

    Locally invariant to dilations within the size range in each conv (up to
    sampling), pointwise or 1x1 elsewhere; translation-equivariant for
    multiples of ``stride``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float, conv_kw: dict):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = ScaleSteerableConv(c_in, c_out, stride=stride, **conv_kw)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = ScaleSteerableConv(c_out, c_out, **conv_kw)
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


class SSCNNWideResNet(nn.Module):
    """WRN-``depth``-``widen`` with scale-steerable convs (base 3, sizes 3/5/7, k 1, no ReLU).

    Widths ``11, 11 w, 22 w, 44 w`` as published. Head: BN-ReLU, global
    average over space, linear; the published fixed 24x24 average equals it at
    96 px, and the global one accepts 49...97 too. Departure: the unused
    ``const_real`` tensor of each conv (one number per pair of channels) is left
    out, so we hold ``sum C C'`` parameters fewer than the published count.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 16,
                 widen: int = 8, dropout: float = 0.3, base_size: int = 3,
                 sizes: Sequence[int] = (3, 5, 7), ks: Sequence[float] = (1.0,),
                 phis: Sequence[float] = DEFAULT_PHIS, sigma_phi: float = math.pi / 16,
                 phase: float = -math.pi / 4):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        conv_kw = dict(base_size=base_size, sizes=sizes, ks=ks, phis=phis, sigma_phi=sigma_phi,
                       phase=phase, relu=False)
        widths = [11, 11 * widen, 22 * widen, 44 * widen]
        n = (depth - 4) // 6
        self.stem = ScaleSteerableConv(in_channels, widths[0], **conv_kw)
        self.groups = nn.ModuleList(
            nn.Sequential(*[SSWideBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                                        (1 if g == 0 else 2) if i == 0 else 1, dropout, conv_kw)
                            for i in range(n)])
            for g in range(3))
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():  # the WRN initialisation of the plain layers
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stem and each group's output, then ``proj``: the BN-ReLU map the head averages."""
        x = self.stem(x)
        out = {"stem": x}
        for g, group in enumerate(self.groups):
            x = group(x)
            out[f"group{g + 1}"] = x
        out["proj"] = F.relu(self.bn(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for group in self.groups:
            x = group(x)
        return self.fc(F.relu(self.bn(x)).mean(dim=(-2, -1)))
