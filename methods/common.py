"""Pieces several methods' models build the same way: the MNIST MLP head, the WRN
initialisation of norms and linear biases, folding a scale axis into channels, and the
features/forward passes of block-stack MNIST models, pre-activation WRN blocks and
scale-pooled WRNs.

Kept here (not in one method's package) so that no method depends on another for them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlockStackNet", "PreActWideBlock", "ScalePooledWRN", "fold_scale_axis", "init_norms_and_linear_biases",
           "mnist_head"]


def mnist_head(channels: int, hidden: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The published MLP head on globally pooled features (its first Linear has no bias: BN follows)."""
    return nn.Sequential(
        nn.Linear(channels, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(hidden, num_classes))


def init_norms_and_linear_biases(model: nn.Module,
                                 norm_types: tuple[type[nn.Module], ...]) -> None:
    """WRN initialisation of everything but the convolutions: norms of ``norm_types`` to
    weight 1 / bias 0, every Linear bias to 0 (Linear weights keep PyTorch's default).

    Draws no random numbers, so calling it before or after the convolutions' (random)
    initialisation gives the same weights."""
    for m in model.modules():
        if isinstance(m, norm_types):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def fold_scale_axis(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, S, H, W)`` -> ``(B, C*S, H, W)`` (channel-major), 4-D maps unchanged."""
    return x.flatten(1, 2) if x.dim() == 5 else x


class BlockStackNet(nn.Module):
    """A stack ``self.blocks`` (an ``nn.ModuleList``) then ``self.head`` on the global spatial
    max of the last map; subclasses build both. ``features``: each block's output, any scale
    axis folded into channels (4-D maps are reported as they are)."""

    blocks: nn.ModuleList
    head: nn.Module

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            out[f"block{i + 1}"] = fold_scale_axis(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(torch.amax(x, dim=(-2, -1)))


class ScalePooledWRN(nn.Module):
    """A WRN on a scale axis: ``self.stem``, ``self.groups``, then ``self.project`` (the pool
    over scales), ``self.bn``, ReLU, spatial mean and ``self.fc``; subclasses build them.
    ``features``: the stem and each group (scale axis folded) and ``proj``, the final map."""

    stem: nn.Module
    groups: nn.ModuleList
    project: nn.Module
    bn: nn.Module
    fc: nn.Module

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stem, each group's output (scale axis folded) and the scale-pooled final map."""
        x = self.stem(x)
        out = {"stem": fold_scale_axis(x)}
        for g, group in enumerate(self.groups):
            x = group(x)
            out[f"group{g + 1}"] = fold_scale_axis(x)
        out["proj"] = F.relu(self.bn(self.project(x)))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for group in self.groups:
            x = group(x)
        x = F.relu(self.bn(self.project(x)))
        return self.fc(x.mean((-2, -1)))


class PreActWideBlock(nn.Module):
    """The pre-activation WRN block's pass: BN-ReLU-``conv1``-BN-ReLU-dropout-``conv2`` plus a
    shortcut (identity when ``self.shortcut`` is ``None``, else ``shortcut`` of the
    pre-activated input); subclasses build ``bn1``, ``conv1``, ``bn2``, ``conv2``,
    ``shortcut`` and set ``dropout``."""

    bn1: nn.Module
    conv1: nn.Module
    bn2: nn.Module
    conv2: nn.Module
    shortcut: nn.Module | None
    dropout: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        y = F.relu(self.bn2(self.conv1(pre)))
        if self.dropout > 0:
            y = F.dropout(y, p=self.dropout, training=self.training)
        return self.conv2(y) + (x if self.shortcut is None else self.shortcut(pre))
