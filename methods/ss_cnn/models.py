"""SS-CNN model assembly: the MNIST network and the STL-10 WRN-16-8 (SESN benchmark's configs).

Layers live in :mod:`methods.ss_cnn.layers`. The published models are the SESN
benchmark's ``mnist_ss_28`` (three layers 30/60/90, base size 11, kernel sizes
5...13, frequencies 0.5/1/2) and ``wrn_16_8_ss`` (every 3x3 conv of a
pre-activation WRN-16-8 replaced by a scale-steerable conv with base size 3,
frequency 1, no ReLU: the first conv at sizes 3/5/7 with a max over them, the 12
convolutions of the residual blocks at size 3 alone, as the published code builds
them; widths narrowed to 11/88/176/352 to pay for its 18 coefficients per pair of
channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from scaleqbench.methods.common import (
    BlockStackNet,
    PreActWRN,
    WideBlock,
    he_normal_conv2d,
    init_norms_and_linear_biases,
    wrn_blocks_per_group,
    wrn_groups,
)
from scaleqbench.methods.ss_cnn.layers import DEFAULT_PHIS, ScaleSteerableConv

__all__ = ["SSCNNMnist", "SSCNNWideResNet"]


class SSCNNMnist(BlockStackNet):
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

    ``features``: each block's output ``(B, C', H', W')`` (no scale axis: the sizes are
    max-pooled).
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


def _steerable_conv(conv_kw: dict) -> Callable[[int, int, int], nn.Module]:
    """The WRN's 3x3 convolution: a scale-steerable conv of ``conv_kw`` at a given stride."""
    return lambda c_in, c_out, stride: ScaleSteerableConv(c_in, c_out, stride=stride, **conv_kw)


class SSCNNWideResNet(PreActWRN):
    """WRN-``depth``-``widen`` with scale-steerable convs (base 3, k 1, no ReLU).

    The first conv (``stem``) takes the max over kernel sizes ``sizes`` (3/5/7); every
    block is the pre-activation WRN block (:class:`~methods.common.WideBlock`) with
    scale-steerable convs at ``block_sizes`` (3 alone: one 3x3 steerable filter, no max),
    plain BN and 1x1 shortcuts. That is the published ``wrn_16_8_ss``: its
    ``NetworkBlock`` never passes the size range on to the blocks, so their convolutions
    keep the default ``[3]`` (tested against the authors' logits in tests/test_ss_cnn.py).
    Translation-equivariant for multiples of the strides; the stem's max over sizes is the
    only multi-size operation.

    Widths ``11, 11 w, 22 w, 44 w`` as published. Head: BN-ReLU, global
    average over space, linear; the published fixed 24x24 average equals it at
    96 px, and the global one accepts 49...97 too. Departure: the unused
    ``const_real`` tensor of each conv (one number per pair of channels) is left
    out, so we hold ``sum C C'`` parameters fewer than the published count.
    ``features``: the stem and each group's output, then ``proj``: the BN-ReLU map the
    head averages.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, depth: int = 16,
                 widen: int = 8, dropout: float = 0.3, base_size: int = 3,
                 sizes: Sequence[int] = (3, 5, 7), block_sizes: Sequence[int] = (3,),
                 ks: Sequence[float] = (1.0,), phis: Sequence[float] = DEFAULT_PHIS,
                 sigma_phi: float = math.pi / 16, phase: float = -math.pi / 4):
        super().__init__()
        n = wrn_blocks_per_group(depth)
        conv_kw = dict(base_size=base_size, ks=ks, phis=phis, sigma_phi=sigma_phi,
                       phase=phase, relu=False)
        widths = [11, 11 * widen, 22 * widen, 44 * widen]
        self.stem = ScaleSteerableConv(in_channels, widths[0], sizes=sizes, **conv_kw)
        conv = _steerable_conv({**conv_kw, "sizes": block_sizes})
        self.groups = wrn_groups(widths, n, lambda g, i, c_in, c_out, stride: WideBlock(
            c_in, c_out, stride, dropout, conv=conv, shortcut_first=True))
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        he_normal_conv2d(self)  # the WRN initialisation of the plain layers
        init_norms_and_linear_biases(self, (nn.BatchNorm2d,))
