"""``cnn``: the plain CNN baselines of the SESN benchmark (MNIST CNN, STL-10 WRN-16-8).

Not equivariant to anything but (approximately, through padding) translations;
they are the reference every scale-equivariant method is compared with. Both
follow the authors' code, ISosnovik/sesn (``models/mnist_cnn.py`` and
``models/stl_wrn.py``); the MNIST model departs from it in its head only (see
:class:`CNN`), and tests/test_cnn_models.py checks both against fixtures made
from that code.
"""

from __future__ import annotations

import math

from torch import nn

from scaleqbench.methods.common import (
    BlockStackNet,
    PreActWRN,
    WideBlock,
    init_norms_and_linear_biases,
    mnist_head,
    wrn_blocks_per_group,
    wrn_groups,
)
from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method
from scaleqbench.methods.style import BUILTIN_STYLES

REFERENCE = "ISosnovik/sesn@deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac:models/mnist_cnn.py"


class ConvBlock(nn.Sequential):
    """conv k x k (same padding) -> ReLU [-> max-pool 2] -> BatchNorm. Translation-equivariant.

    The order of the SESN benchmark's CNN (BN after the pool, on the map the next
    block reads). The conv keeps PyTorch's default initialisation, bias included,
    as the authors' CNN does.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, pool: bool):
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.ReLU(inplace=True),
        ]
        if pool:
            # ceil_mode keeps odd sizes from dropping their last row/column
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        layers.append(nn.BatchNorm2d(c_out))
        super().__init__(*layers)


class CNN(BlockStackNet):
    """SESN's MNIST CNN: three 7x7 conv blocks (32/63/95), ReLU, 2x2 max-pool after the
    first two, BatchNorm; MLP head ``Linear(C, hidden) -> BN -> ReLU -> Dropout -> Linear``.

    Departure from the authors' model (``models/mnist_cnn.py``), the one the
    protocol forces: their last block ends with a 4x4 max-pool (padding 2) that
    leaves a 2x2 map at 28 px, flattened into ``Linear(4 * C3, hidden)``; a fixed
    flatten accepts one input size only. Here the last block keeps its map and
    the head takes its global max, so every input size (8...28) is accepted and
    the first Linear reads ``C3`` features: ``3 * C3 * hidden`` parameters fewer
    (72,960 at 95 / 256: 421,589 against the published 494,549). Its first
    Linear has no bias, as theirs (BatchNorm1d follows it). Their 2x2 pools drop
    an odd last row; ours keep it (``ceil_mode``), the same at 28 px.
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
        self.head = mnist_head(c_prev, hidden, num_classes, dropout)


def _conv3x3(c_in: int, c_out: int, stride: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class WideResNet(PreActWRN):
    """WRN-``depth``-``widen`` (Zagoruyko & Komodakis, 2016): SESN's STL-10 baseline (WRN-16-8).

    3x3 stem (16), three groups of ``(depth - 4) / 6`` pre-activation blocks at
    widths ``16 * widen * (1, 2, 4)`` and strides 1, 2, 2, then BN, ReLU, global
    average pooling and a Linear layer -- the authors' ``wrn_16_8``
    (``models/stl_wrn.py``, 10,961,370 parameters), whose head is global too, so
    every input size is accepted. He-normal convolutions over the fan-out,
    BN weights 1 and biases 0, Linear bias 0, as theirs. Translation-equivariant
    for shifts by multiples of the strides.

    ``features``: the stem, each group's output and ``final`` (after BN-ReLU: what the
    head averages).
    """

    final_name = "final"

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 16,
                 widen: int = 8, dropout: float = 0.3):
        super().__init__()
        n = wrn_blocks_per_group(depth)
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.groups = wrn_groups(widths, n, lambda g, i, c_in, c_out, stride: WideBlock(
            c_in, c_out, stride, dropout, conv=_conv3x3))
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        init_norms_and_linear_biases(self, (nn.BatchNorm2d,))


CARD = MethodCard(family="baseline", paper="Sosnovik et al., ICLR 2020 (baseline)", year=2020,
                  reference=REFERENCE, style=BUILTIN_STYLES["cnn"])


@register_method(
    "cnn", CARD,
    configs={
        "mnist": dict(channels=(32, 63, 95)),
        "stl10": dict(arch="wrn", depth=16, widen=8, dropout=0.3),
        "quick": dict(channels=(16, 32, 48), hidden=128, dropout=0.3),
    })
def build_cnn(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
              **kwargs) -> nn.Module:
    """SESN's baselines: a 3-block 7x7 CNN (32/63/95, global max-pool head), WRN-16-8 on STL-10."""
    if arch == "mnist":
        return CNN(in_channels=in_channels, num_classes=num_classes, **kwargs)
    if arch == "wrn":
        return WideResNet(in_channels=in_channels, num_classes=num_classes, **kwargs)
    raise ValueError(f"unknown cnn arch {arch!r}; use 'mnist' or 'wrn'")
