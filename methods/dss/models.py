"""DSS model assembly: the MNIST scalar / vector networks (on the `cnn` skeleton).

Both follow the plain `cnn` baseline block for block -- three 7x7 convolutions
(32/63/95), ReLU, 2x2 max-pool after the first two, BatchNorm, and the same
global-max-pool MLP head -- with every convolution replaced by a DSS scale
convolution over a discrete Gaussian scale-space, so that the comparison with
`cnn` isolates the scale structure. That is the SESN benchmark's MNIST DSS
(ISosnovik/sesn, ``models/mnist_dss.py``), whose blocks run in this order. The STL-10 wide ResNet lives in
:mod:`methods.dss.wrn`.
"""

from __future__ import annotations

import torch
from torch import nn

from scaleqbench.methods.common import BlockStackNet, MaxOverScales, mnist_head
from scaleqbench.methods.dss.layers import (
    DilatedSpatialMaxPool,
    ScaleBatchNorm,
    ScaleConv,
    dss_scale_axis,
    fold_scales,
)
from scaleqbench.methods.dss.scale_space import ScaleSpaceLift
from scaleqbench.methods.scale_axis import ScaleAxis

__all__ = ["DSSMnist", "ScalarBlock", "VectorBlock"]

VARIANTS = ("vector", "scalar")


class VectorBlock(nn.Module):
    """Scale conv -> ReLU [-> 2x2 max-pool] -> BN (shared over scales) [-> max over scales].

    ``(B, C_in, S, H, W) -> (B, C_out, S - depth + 1, H', W')``, or
    ``(B, C_out, H', W')`` with ``project=True`` (the last block of the vector
    model). Without projection: exactly equivariant to the 2x down-sampling action
    on scale-spaces, ``f(s, x) -> f(s + 1, 2 x)`` -- in its convolution, pointwise
    in BN (eval) / ReLU, and through the max-pool, whose window is dilated by
    ``base**s`` at scale ``s`` (see :class:`~methods.dss.layers.DilatedSpatialMaxPool`);
    translation-equivariant. With projection the output is invariant to shifts
    along the scale axis only up to what falls off its ends: with the two MNIST
    scales, a 2x down-sampling moves one of the two slices off the axis.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_scales: int, depth: int,
                 base: int, pool: bool, project: bool = False):
        super().__init__()
        self.conv = ScaleConv(c_in, c_out, kernel_size, n_scales, depth=depth, base=base)
        self.act = nn.ReLU(inplace=True)
        self.pool = DilatedSpatialMaxPool(2, base) if pool else nn.Identity()
        self.bn = ScaleBatchNorm(c_out)
        self.project = MaxOverScales(share_ties=True) if project else nn.Identity()
        self.out_scales = self.conv.out_scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.bn(self.pool(self.act(self.conv(x)))))


class ScalarBlock(nn.Module):
    """Lift -> scale conv -> max over scales -> ReLU [-> 2x2 max-pool] -> BN; scalar maps out.

    ``(B, C_in, H, W) -> (B, C_out, H', W')``. The lift treats its input as
    carrying the blur ``zero_scale`` in its own pixels, as the first lift does.
    Locally scale-invariant (max over the scales of the lift), translation-
    equivariant; no scale axis survives the block.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_scales: int, depth: int,
                 base: int, zero_scale: float, pool: bool):
        super().__init__()
        self.lift = ScaleSpaceLift(n_scales, zero_scale, base)
        self.conv = ScaleConv(c_in, c_out, kernel_size, n_scales, depth=depth, base=base)
        self.scale_pool = MaxOverScales(share_ties=True)
        # not in place: the max over scales before it needs its output for the backward pass
        self.act = nn.ReLU()
        # ceil_mode keeps odd sizes from dropping their last row/column (as in `cnn`)
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if pool else nn.Identity()
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.scale_pool(self.conv(self.lift(x)))
        return self.bn(self.pool(self.act(y)))


class DSSMnist(BlockStackNet):
    """DSS on the `cnn` skeleton: scale-space lift, three DSS blocks, global max-pool head.

    ``variant="vector"`` lifts once and keeps the scale axis through every block,
    taking the max over scales only at the end of the last block, the map the
    head pools (as the `sesn` vector model does); ``variant="scalar"`` takes the
    max over scales after every convolution and re-lifts the scalar map before
    the next one. Scales: ``n_scales`` slices of a base-``base`` discrete Gaussian
    scale-space from ``zero_scale`` (paper: 2 scales, base 2, zero scale 0.25);
    at scale ``s`` the 7x7 kernels are dilated by ``base**s``.

    Blocks run conv -> ReLU -> pool -> BN, the scale-space lift cuts its kernels
    at the published half-width, the scale convolutions carry no bias and start
    He-normal, as in the SESN benchmark's MNIST DSS (ISosnovik/sesn,
    ``models/mnist_dss.py``). Departures from it, each tested in
    tests/test_dss_reference.py:

    * the head (the protocol forces it): their last block ends with a 4x4
      max-pool (padding 2) that leaves a 2x2 map at 28 px, flattened into
      ``Linear(4 * C3, hidden)``; a fixed flatten accepts one input size only.
      Here the head takes the global max over space, so any size is accepted,
      and its first Linear reads ``C3`` features: ``3 * C3 * hidden`` parameters
      fewer (72,960 at 95 / 256: 421,399 against the published 494,359). The
      first Linear has no bias, as theirs.
    * the vector variant's 2x2 max-pools are dilated by ``base**s`` at scale
      ``s``, as its convolutions are, so that every block before the scale
      projection is exactly equivariant to the scale-space action
      ``f(s, x) -> f(s + 1, 2 x)``; the SESN benchmark's model pools every scale
      with a plain 2x2 window, which breaks that equivariance after the first
      pool. Scale 0 is pooled alike by both, so the two agree on it.
    * the 2x2 max-pools keep an odd last row (``ceil_mode``); the same at 28 px.

    `cnn` keeps PyTorch's default initialisation (a ~2.4x smaller std and a
    random bias), as the authors' CNN does: measurements at initialisation
    compare the two initialisations as well as the architectures.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, variant: str = "vector",
                 channels: tuple[int, ...] = (32, 63, 95), kernel_size: int = 7,
                 n_scales: int = 2, zero_scale: float = 0.25, base: int = 2,
                 scale_depth: int = 1, hidden: int = 256, dropout: float = 0.7):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"DSS variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        blocks: list[nn.Module] = []
        c_prev, s_prev = in_channels, n_scales
        last = len(channels) - 1
        if variant == "vector":
            self.lift: nn.Module = ScaleSpaceLift(n_scales, zero_scale, base)
            for i, c in enumerate(channels):
                block = VectorBlock(c_prev, c, kernel_size, s_prev, scale_depth, base,
                                    pool=i < last, project=i == last)
                blocks.append(block)
                c_prev, s_prev = c, block.out_scales
        else:
            self.lift = nn.Identity()  # every scalar block lifts its own input
            for i, c in enumerate(channels):
                blocks.append(ScalarBlock(c_prev, c, kernel_size, n_scales, scale_depth, base,
                                          zero_scale, i < last))
                c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.head = mnist_head(c_prev, hidden, num_classes, dropout)

    def scale_axes(self) -> dict[str, ScaleAxis]:
        """The vector variant's blocks before the projection carry the scale axis
        (``base**s`` for the block's ``s < S - depth + 1`` scales); the scalar variant's
        maps and the projected last block carry none."""
        if self.variant != "vector":
            return {}
        return {f"block{i + 1}": dss_scale_axis(block.conv.base, block.out_scales)
                for i, block in enumerate(self.blocks) if isinstance(block.project, nn.Identity)}

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """A block's output, ``(B, C, H', W')``: the vector variant's blocks 1 and 2 fold
        their scale axis into channels (channel-major: ``c * S + s``), its block 3 is the
        scale-projected map."""
        return fold_scales(x) if x.dim() == 5 else x
