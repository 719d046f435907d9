"""Pieces several methods' models build the same way: the MNIST MLP head, the WRN
initialisation, folding a scale axis into channels, the max over a scale axis, the
features/forward passes of block-stack MNIST models, and the pre-activation wide ResNet
(its block, its groups, its passes; plain or pooled over scales).

Kept here (not in one method's package) so that no method depends on another for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlockStackNet", "MaxOverScales", "PreActWRN", "PreActWideBlock", "ScalePooledWRN",
           "WideBlock", "conv1x1_shortcut", "fold_scale_axis", "he_normal_conv2d",
           "init_norms_and_linear_biases", "mnist_head", "wrn_blocks_per_group", "wrn_groups"]


def mnist_head(channels: int, hidden: int, num_classes: int, dropout: float,
               first_bias: bool = False) -> nn.Sequential:
    """The published MLP head on globally pooled features: Linear-BN-ReLU-dropout-Linear.

    Its first Linear has no bias (BN follows it) unless ``first_bias`` (as SEVF's head)."""
    return nn.Sequential(
        nn.Linear(channels, hidden, bias=first_bias), nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes))


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


def he_normal_conv2d(model: nn.Module) -> None:
    """He-normal over the fan-out (ReLU gain) of every ``nn.Conv2d`` weight in ``model``, in
    module order: the WRN initialisation of its plain convolutions."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def fold_scale_axis(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, S, H, W)`` -> ``(B, C*S, H, W)`` (channel-major), 4-D maps unchanged."""
    return x.flatten(1, 2) if x.dim() == 5 else x


class MaxOverScales(nn.Module):
    """H -> Z2: the max over the scale axis, ``(B, C, S, H, W)`` -> ``(B, C, H, W)``.

    Invariant to permutations of the scale axis, so to scale shifts (the output is
    equivariant to dilations, up to the scales that fall off the ends of the axis);
    translation-equivariant. Where several scales hold the maximum, the gradient goes to
    one of them (``max``'s backward: one scatter), or with ``share_ties`` is shared evenly
    among them (``amax``'s backward).
    """

    def __init__(self, share_ties: bool = False):
        super().__init__()
        self.share_ties = share_ties

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=2) if self.share_ties else x.max(2).values

    def extra_repr(self) -> str:
        return "share_ties=True" if self.share_ties else ""


class BlockStackNet(nn.Module):
    """A stack ``self.blocks`` (an ``nn.ModuleList``) then ``self.head`` on the global spatial
    max of the last map; subclasses build both, and may set ``self.lift`` (applied to the
    input first) and ``self.project`` (applied to the last map before the head, reported as
    ``proj``). ``features``: each block's output through :meth:`fold` (any scale axis folded
    into channels; 4-D maps are reported as they are)."""

    blocks: nn.ModuleList
    head: nn.Module

    def __init__(self) -> None:
        super().__init__()
        # plain attributes until a subclass assigns a module (a class-level default would
        # hide the registered module from attribute lookup)
        self.lift: nn.Module | None = None
        self.project: nn.Module | None = None

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """A block's output as a ``(B, C', H', W')`` feature map."""
        return fold_scale_axis(x)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.lift is not None:
            x = self.lift(x)
        out = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            out[f"block{i + 1}"] = self.fold(x)
        if self.project is not None:
            out["proj"] = self.project(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lift is not None:
            x = self.lift(x)
        for block in self.blocks:
            x = block(x)
        if self.project is not None:
            x = self.project(x)
        return self.head(torch.amax(x, dim=(-2, -1)))


class PreActWideBlock(nn.Module):
    """The pre-activation WRN block's pass: BN-act-``conv1``-BN-act-dropout-``conv2`` plus a
    shortcut (identity when ``self.shortcut`` is ``None``, else ``shortcut`` of the
    pre-activated input); subclasses build ``bn1``, ``conv1``, ``bn2``, ``conv2``,
    ``shortcut`` and set ``dropout``. The activation is a ReLU and the dropout elementwise
    unless a subclass overrides :meth:`_activation` / :meth:`_dropout`.

    ``shortcut_first``: apply the shortcut before ``conv1`` rather than after ``conv2``.
    The result is the same; the gradient at the pre-activated input is a sum over its
    readers (the shortcut and every read of ``conv1``, which may read its input once
    per scale) that autograd adds up in the order the readers were applied, so the
    order decides the last bits. SEVF's and SS-CNN's blocks apply it first, the others
    last; a seeded training run repeats to the bit only with the same order.
    """

    bn1: nn.Module
    conv1: nn.Module
    bn2: nn.Module
    conv2: nn.Module
    shortcut: nn.Module | None
    dropout: float
    shortcut_first: bool = False

    def _activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    def _dropout(self, y: torch.Tensor) -> torch.Tensor:
        if self.dropout > 0:
            return F.dropout(y, p=self.dropout, training=self.training)
        return y

    def _skip(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return x if self.shortcut is None else self.shortcut(pre)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self._activation(self.bn1(x))
        skip = self._skip(x, pre) if self.shortcut_first else None
        y = self.conv2(self._dropout(self._activation(self.bn2(self.conv1(pre)))))
        return y + (skip if skip is not None else self._skip(x, pre))


def conv1x1_shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """The WRN's projected shortcut: a bias-free 1x1 convolution at the block's stride."""
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class WideBlock(PreActWideBlock):
    """A pre-activation WRN block from its parts: ``conv(c_in, c_out, stride)`` for both
    convolutions (the second at stride 1), ``norm(channels)`` for both norms, and
    ``shortcut(c_in, c_out, stride)`` where the width or the resolution changes;
    ``shortcut_first`` as in :class:`PreActWideBlock`.

    As equivariant as its parts: translations by multiples of ``stride``, and the
    convolutions' scale behaviour (pointwise norms and activations commute with it)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float,
                 conv: Callable[[int, int, int], nn.Module],
                 norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 shortcut: Callable[[int, int, int], nn.Module] = conv1x1_shortcut,
                 shortcut_first: bool = False):
        super().__init__()
        self.shortcut_first = shortcut_first
        self.bn1 = norm(c_in)
        self.conv1 = conv(c_in, c_out, stride)
        self.bn2 = norm(c_out)
        self.conv2 = conv(c_out, c_out, 1)
        self.dropout = dropout
        self.shortcut = shortcut(c_in, c_out, stride) if c_in != c_out or stride != 1 else None


def wrn_blocks_per_group(depth: int) -> int:
    """``n`` of a WRN-``depth``: a stem, three groups of ``n`` two-convolution blocks and a
    linear head, ``depth = 6 n + 4``."""
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n+4, got {depth}")
    return (depth - 4) // 6


def wrn_groups(widths: Sequence[int], n: int,
               block: Callable[[int, int, int, int, int], nn.Module]) -> nn.ModuleList:
    """The WRN's three groups of ``n`` blocks ``block(g, i, c_in, c_out, stride)``, built in
    order: group ``g`` goes from ``widths[g]`` to ``widths[g + 1]`` channels, its first block
    at stride 1, 2, 2 (``g = 0, 1, 2``), the others at stride 1 and constant width."""
    return nn.ModuleList(
        nn.Sequential(*[block(g, i, widths[g] if i == 0 else widths[g + 1], widths[g + 1],
                              (1 if g == 0 else 2) if i == 0 else 1) for i in range(n)])
        for g in range(3))


class PreActWRN(nn.Module):
    """A pre-activation WRN's passes: ``self.stem``, ``self.groups``, :meth:`final_map` (by
    default BN-ReLU with ``self.bn``), :meth:`pool` (the spatial mean) and ``self.fc``;
    subclasses build the modules. ``features``: the stem and each group through
    :meth:`fold`, then the final map through :meth:`project_final`, named
    ``final_name``."""

    stem: nn.Module
    groups: nn.ModuleList
    bn: nn.Module
    fc: nn.Module
    final_name = "proj"

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """A stem or group output as a ``(B, C', H, W)`` feature map."""
        return fold_scale_axis(x)

    def final_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last group's output -> the activated map the head pools."""
        return F.relu(self.bn(x))

    def project_final(self, x: torch.Tensor) -> torch.Tensor:
        """The final map as ``features`` reports it."""
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The final map -> ``(B, C)`` features for ``self.fc``."""
        return x.mean((-2, -1))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        out = {"stem": self.fold(x)}
        for g, group in enumerate(self.groups):
            x = group(x)
            out[f"group{g + 1}"] = self.fold(x)
        out[self.final_name] = self.project_final(self.final_map(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for group in self.groups:
            x = group(x)
        return self.fc(self.pool(self.final_map(x)))


class ScalePooledWRN(PreActWRN):
    """A WRN on a scale axis: its final map is ``self.project`` (the pool over scales),
    ``self.bn`` and ReLU; ``features`` folds the scale axis of the stem and the groups."""

    project: nn.Module

    def final_map(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.project(x)))
