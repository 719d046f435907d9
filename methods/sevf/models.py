"""SEVF model assembly: the MNIST vector and scalar networks (SESN benchmark's configurations).

Layers live in :mod:`methods.sevf.layers` and :mod:`methods.sevf.vector_field`; the STL-10 wide ResNet in
:mod:`methods.sevf.wrn`. Published MNIST models (SESN's ``mnist_sevf_*_28``):
three 7x7 SEVF convolutions on the published scale grid (8 scales, base 1.26),
2x2 max-pooling and batch normalisation after the first two; the vector model
has 23/45/68 channels (its vector convolutions hold two filters per pair of
channels), the scalar model 32/63/95.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from scaleqbench.methods.common import mnist_head
from scaleqbench.methods.sevf.layers import SEVFConv, SEVFLift, SEVFScalarConv
from scaleqbench.methods.sevf.vector_field import VectorBatchNorm, VectorMaxPool, fold, magnitude

__all__ = ["MNIST_CHANNELS", "SEVFMnist"]

VARIANTS = ("vector", "scalar")
#: the published widths of each variant (SESN's mnist_sevf_vector_28 / mnist_sevf_scalar_28)
MNIST_CHANNELS = {"vector": (23, 45, 68), "scalar": (32, 63, 95)}


class SEVFMnist(nn.Module):
    """SEVF for MNIST: three SEVF convs (k 7), pool + BN after the first two, MLP head.

    ``variant="vector"``: the first conv lifts the image to a vector field, the
    next two are vector-to-vector SEVF convs; pooling keeps the longest vector
    of each window and batch norm rescales lengths (angles untouched), so every
    block is equivariant to zooms by ``base`` acting as zoom + rotation of the
    vectors (up to resampling). The head reads the magnitudes of block 3.
    ``variant="scalar"``: every conv keeps only its magnitude (locally
    scale-invariant maps), with ordinary max-pool and BN.

    Departure from the published model: the head takes a global max over space
    instead of a 4x4 max-pool (padding 2) of the 7x7 map and flattening its
    2x2 result, so every input size (8...28) is accepted; the first FC layer
    therefore reads ``C3`` instead of ``4 * C3`` features, i.e.
    ``3 * C3 * hidden`` parameters fewer (52,224 for the vector and 72,960 for
    the scalar model). The max-pools use ``ceil_mode`` (odd sizes keep their
    last row); at 28 px that changes nothing. Vector batch norm applies its
    learnable gain (the original ScaleEqNet does; SESN's copy holds it unused).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, variant: str = "vector",
                 channels: Sequence[int] | None = None, kernel_size: int = 7,
                 n_small: int = 5, n_big: int = 3, base: float = 1.26,
                 angle_range: float = 2 * math.pi / 3, hidden: int = 256, dropout: float = 0.7):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"SEVF variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        channels = tuple(channels or MNIST_CHANNELS[variant])
        grid = dict(n_small=n_small, n_big=n_big, base=base, angle_range=angle_range)
        convs, pools, norms = [], [], []
        c_prev = in_channels
        for i, c in enumerate(channels):
            last = i == len(channels) - 1
            if variant == "vector":
                conv: nn.Module = (SEVFLift if i == 0 else SEVFConv)(c_prev, c, kernel_size, **grid)
                pool: nn.Module = VectorMaxPool(2) if not last else nn.Identity()
                norm: nn.Module = VectorBatchNorm(c) if not last else nn.Identity()
            else:
                conv = SEVFScalarConv(c_prev, c, kernel_size, **grid)
                pool = nn.MaxPool2d(2, ceil_mode=True) if not last else nn.Identity()
                norm = nn.BatchNorm2d(c) if not last else nn.Identity()
            convs.append(conv)
            pools.append(pool)
            norms.append(norm)
            c_prev = c
        self.convs, self.pools, self.norms = (nn.ModuleList(convs), nn.ModuleList(pools),
                                              nn.ModuleList(norms))
        # the published MLP head on globally max-pooled maps; its first FC has a bias
        self.head = mnist_head(c_prev, hidden, num_classes, dropout, first_bias=True)

    def _maps(self, x: torch.Tensor):
        last = len(self.convs) - 1
        for i, (conv, pool, norm) in enumerate(zip(self.convs, self.pools, self.norms)):
            x = norm(pool(conv(x)))
            if i == last and self.variant == "vector":
                x = magnitude(x)
            yield f"block{i + 1}", x

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each block's output, ``(B, C', H', W')``: the vector model's blocks 1-2 fold their
        ``(u, v)`` components into channels (``2c + k``; a zoom rotates these vectors, so
        a plain comparison counts that rotation as error), its block 3 is the magnitude map
        the head pools."""
        return {k: fold(v) if v.dim() == 5 else v for k, v in self._maps(x)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, x in self._maps(x):
            pass
        return self.head(torch.amax(x, dim=(-2, -1)))
