"""``cnn``: the plain CNN baseline of the SESN paper, with a global-pooling head.

Not equivariant to anything but (approximately, through padding) translations;
it is the reference every scale-equivariant method is compared with.
"""

from __future__ import annotations

import torch
from torch import nn

from scalebench.methods.registry import register_method
from scalebench.methods.style import OKABE_ITO, MethodStyle


class ConvBlock(nn.Sequential):
    """conv k x k (same padding) -> BatchNorm -> ReLU [-> max-pool 2]. Translation-equivariant."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, pool: bool):
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
        if pool:
            # ceil_mode keeps odd sizes from dropping their last row/column
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        super().__init__(*layers)


class CNN(nn.Module):
    """SESN's MNIST CNN: three 7x7 conv blocks (32/63/95), BN, ReLU, max-pool after the first two.

    Departure from the paper: the head pools globally (max over space) before
    the MLP (``Linear(C, hidden) -> BN -> ReLU -> Dropout -> Linear``) instead of
    flattening a fixed 2x2 map, so that every input size (8...28 for MNIST, 96
    for STL-10) is accepted. That makes it ~15 % smaller than the published 495k.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 channels: tuple[int, ...] = (32, 63, 95), kernel_size: int = 7,
                 hidden: int = 256, dropout: float = 0.7):
        super().__init__()
        blocks = []
        c_prev = in_channels
        for i, c in enumerate(channels):
            blocks.append(ConvBlock(c_prev, c, kernel_size, pool=i < len(channels) - 1))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            nn.Linear(c_prev, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            out[f"block{i + 1}"] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(torch.amax(x, dim=(-2, -1)))


@register_method(
    "cnn", family="baseline", paper="Sosnovik et al., ICLR 2020 (baseline)", year=2020,
    style=MethodStyle(OKABE_ITO["black"], "s"),
    configs={
        "mnist": dict(channels=(32, 63, 95)),
        "stl10": dict(channels=(32, 63, 95)),
        "quick": dict(channels=(16, 32, 48), hidden=128, dropout=0.3),
    })
def build_cnn(in_channels: int = 1, num_classes: int = 10, **kwargs) -> CNN:
    """Plain 3-block 7x7 CNN (32/63/95) with a global max-pool head."""
    return CNN(in_channels=in_channels, num_classes=num_classes, **kwargs)
