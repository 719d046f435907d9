"""How a model declares the discrete scale axis that some of its feature maps carry.

The model protocol (:mod:`methods.protocol`) folds a scale axis into channels: ``features(x)``
returns ``(B, C * S, H, W)`` maps. A model whose maps carry such an axis says
so with a method ``scale_axes() -> dict[str, ScaleAxis]`` naming the
``features()`` entries that carry one, with the axis's scales ``sigma_i`` and how
it is folded. Nothing else reads the layout of a folded map: the ``scale-shift``
equivariance error (``bench.metrics``) moves along the axis with
:meth:`ScaleAxis.pairs` and :meth:`ScaleAxis.take`.

The convention every lifted model here follows (SESN, DSS, DISCO): a dilation of
the input by ``t = sigma_j / sigma_i`` is a dilation of the map plus a shift
from slice ``i`` to slice ``j``. Read the other way, down-scaling the input from
``N`` to ``s`` pixels with ``N / s = sigma_j / sigma_i`` moves the content of
slice ``j`` of ``f(x)`` to slice ``i`` of ``f(D_s x)`` (DISCO's equivariance loss
compares exactly these two). Slices ``j`` whose partner ``i`` would fall off the
axis have no counterpart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from scaleqbench.methods.protocol import HasScaleAxes

__all__ = ["LAYOUTS", "ScaleAxis", "scale_axes_of"]

#: channel-major: entry ``c * S + s`` is channel c at scale s (``(B, C, S, H, W).flatten(1, 2)``);
#: scale-major: entry ``s * C + c``
LAYOUTS = ("channel-major", "scale-major")


@dataclass(frozen=True)
class ScaleAxis:
    """The discrete scale axis a feature map ``(B, C * S, H, W)`` carries, and how it is folded.

    ``scales`` are the ``S`` scales ``sigma_0 < ... < sigma_{S-1}`` (only their ratios
    matter); ``layout`` is one of :data:`LAYOUTS`.
    """

    scales: tuple[float, ...]
    layout: str = "channel-major"

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales)
        object.__setattr__(self, "scales", scales)
        if not scales or any(not math.isfinite(s) or s <= 0 for s in scales):
            raise ValueError(f"a scale axis needs positive finite scales, got {self.scales!r}")
        if any(b <= a for a, b in zip(scales, scales[1:])):
            raise ValueError(f"scales must increase along the axis, got {scales!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")

    @property
    def size(self) -> int:
        return len(self.scales)

    def pairs(self, full: int, size: int, tol: float = 0.5) -> list[tuple[int, int]]:
        """The slice pairs ``(i, j)`` that down-scaling from ``full`` to ``size`` pixels relates.

        ``(i, j)`` is a pair when ``full / size`` equals ``sigma_j / sigma_i`` to within
        ``tol`` pixels of the size: ``|full * sigma_i / sigma_j - size| <= tol``. The
        default half a pixel makes ``size`` the integer size nearest to the grid's
        ratio. Slice ``i`` of ``f(D_size x)`` is then compared with slice ``j`` of
        ``f(x)``; an empty list means the ratio is not on the grid.
        """
        if size >= full:
            return []
        return [(i, j) for i in range(self.size) for j in range(i + 1, self.size)
                if abs(full * self.scales[i] / self.scales[j] - size) <= tol]

    def take(self, x: torch.Tensor, slices: list[int]) -> torch.Tensor:
        """``(B, C, len(slices), H, W)``: the given scale slices of a folded map ``x``."""
        b, cs, h, w = x.shape
        if cs % self.size:
            raise ValueError(f"a map of {cs} channels cannot fold a scale axis of {self.size}")
        c = cs // self.size
        if self.layout == "channel-major":
            unfolded = x.reshape(b, c, self.size, h, w)
        else:
            unfolded = x.reshape(b, self.size, c, h, w).transpose(1, 2)
        return unfolded[:, :, slices]


def scale_axes_of(model: nn.Module) -> Mapping[str, ScaleAxis]:
    """The scale axes ``model`` declares (``model.scale_axes()``), ``{}`` when it declares none."""
    if not isinstance(model, HasScaleAxes):
        return {}
    axes = dict(model.scale_axes())
    for name, axis in axes.items():
        if not isinstance(axis, ScaleAxis):
            raise TypeError(f"{type(model).__name__}.scale_axes()[{name!r}] is a "
                            f"{type(axis).__name__}, not a ScaleAxis")
    return axes
