"""Pieces several methods' models build the same way: the MNIST MLP head, the WRN
initialisation of norms and linear biases, and folding a scale axis into channels.

Kept here (not in one method's package) so that no method depends on another for them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_scale_axis", "init_norms_and_linear_biases", "mnist_head"]


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
