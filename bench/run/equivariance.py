"""``check_equivariance``: how far a model is from scale equivariance on a batch of images.

The one implementation of the equivariance measurement: ``bench run`` (through
:func:`bench.run.evaluate.evaluate`), ``bench equivariance`` and library users all
call :func:`check_operators` (several operators sharing their forward passes) or
:func:`check_equivariance` (one operator). The error itself, per image, layer
and size, is defined in :mod:`bench.run.metrics` (:func:`~bench.run.metrics.operator_errors`);
this module checks the arguments, measures in chunks of images (averaged weighted by
count, so the result does not depend on the chunk size beyond rounding), and
returns an :class:`EquivarianceResult` per operator.

Feature maps (``model.features(x)``) are compared at native sizes; the logits see
each shrunk image through the input policy ``input`` onto the images' own canvas,
as a run under that policy feeds its model.

The default size grid (:func:`default_sizes`) for images of ``N`` pixels: the sizes
below ``N`` of the benchmark's multi-resolution protocol of that full size
(``mnist-res``: 8..27 at ``N = 28``; ``stl10-res``: 49..96 at ``N = 97``), so that the
summary is the ``eq_err`` a run of that protocol records; for any other ``N``, every
size from ``ceil(N / 2)`` to ``N - 1``. ``scale-shift`` adds the sizes on the grid of
the scale axes the model declares (where its lifted maps are compared). ``rahman-yeh``
takes the authors' own sizes at ``N = 28`` (8..27) and ``N = 97`` (49, 57, ..., 89), and
its summary is theirs (:mod:`bench.run.rahman_yeh`).
"""

from __future__ import annotations

import math
import operator as _operator
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from scaleqbench.bench.run.metrics import (
    OPERATORS,
    headline_eq_err,
    operator_errors,
    scale_shift_headline,
    scale_shift_left_out,
    summary_layer,
)
from scaleqbench.bench.run.rahman_yeh import authors_number, plain_mean, rahman_yeh_layer
from scaleqbench.datasets.protocols import MNIST_RES_SIZES, STL10_RES_SIZES
from scaleqbench.datasets.rahman_yeh import authors_equivariance
from scaleqbench.datasets.scaling import INPUT_POLICIES, to_canvas
from scaleqbench.methods.scale_axis import ScaleAxis, scale_axes_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EquivarianceResult", "check_equivariance", "check_operators", "default_sizes"]

#: full size -> the equivariance grid of the benchmark's multi-resolution protocol of that size
PROTOCOL_GRIDS: dict[int, tuple[int, ...]] = {
    max(sizes): tuple(s for s in sizes if s < max(sizes))
    for sizes in (MNIST_RES_SIZES, STL10_RES_SIZES)}


@dataclass(frozen=True)
class EquivarianceResult:
    """The equivariance error of one model under one operator, on one batch of images.

    ``per_layer``: ``{feature map: {size: error}}`` in the order ``model.features``
    returns the maps (spatial maps only; under ``scale-shift`` a map with a scale axis
    has values only at the sizes on its grid). ``logits``: ``{size: error}`` of the
    logits (``lie``: the mean absolute Lie derivative of the softmax). ``summary``:
    the mean over sizes of :attr:`summary_layer` -- the last spatial layer, or under
    ``scale-shift`` the deepest map with a scale axis: the ``eq_err`` (and
    ``eq_err_scale_shift``) of a run record; under ``rahman-yeh`` the authors' number
    (their layer's errors summed over sizes, divided by the number of sizes plus one),
    with the plain mean over sizes in ``plain_summary``. ``left_out`` (``scale-shift``
    only): per map with a scale axis and size, the slices that had no partner on the axis.
    """

    operator: str
    full_size: int
    sizes: tuple[int, ...]
    images: int
    per_layer: dict[str, dict[int, float]]
    logits: dict[int, float]
    summary: float
    summary_layer: str | None
    left_out: dict[str, dict[int, int]] = field(default_factory=dict)
    plain_summary: float | None = None

    @property
    def logit_error(self) -> float:
        """The logits' error averaged over sizes (a run record's ``logit_inv_err``)."""
        vals = list(self.logits.values())
        return sum(vals) / len(vals) if vals else math.nan

    def nested(self) -> dict[str, dict[int, float]]:
        """``{layer: {size: error}}`` with the logits last under ``"logits"`` (the form of
        :func:`bench.run.metrics.operator_errors` and of the run records)."""
        return {**self.per_layer, "logits": self.logits} if self.logits else dict(self.per_layer)

    def to_frame(self) -> pd.DataFrame:
        """One row per feature map and ``logits``, one column per size, and their ``mean``
        (NaN where a map has no value at a size: ``scale-shift`` off its grid)."""
        import pandas as pd

        rows = self.nested()
        frame = pd.DataFrame([[d.get(s, math.nan) for s in self.sizes] for d in rows.values()],
                             index=pd.Index(list(rows), name="layer"),
                             columns=pd.Index(list(self.sizes), name="size"), dtype=float)
        frame["mean"] = frame.mean(axis=1)
        return frame

    def __str__(self) -> str:
        sizes = (f"size {self.sizes[0]}" if len(self.sizes) == 1
                 else f"sizes {min(self.sizes)}..{max(self.sizes)}")
        how = (f"sum over sizes of {self.summary_layer} / {len(self.sizes) + 1}, the "
               f"authors' normalisation; plain mean {self.plain_summary:.3e}"
               if self.plain_summary is not None else f"mean over sizes of {self.summary_layer}")
        lines = [f"{self.operator} equivariance error on {self.images} image(s) of "
                 f"{self.full_size}x{self.full_size}, {sizes}",
                 f"summary {self.summary:.3e} ({how})"]
        width = max(len("layer"), *(len(k) for k in self.nested()))
        lines.append(f"{'layer':<{width}}  {'mean':>9}  {'worst':>9}  at size")
        for name, per_size in self.nested().items():
            if not per_size:
                lines.append(f"{name:<{width}}  {'-':>9}  {'-':>9}  (no size on its grid)")
                continue
            worst = max(per_size, key=per_size.__getitem__)
            mean = sum(per_size.values()) / len(per_size)
            some = (f" ({len(per_size)} of {len(self.sizes)} sizes)"
                    if len(per_size) < len(self.sizes) else "")
            lines.append(f"{name:<{width}}  {mean:9.3e}  {per_size[worst]:9.3e}  {worst}{some}")
        return "\n".join(lines)


def default_sizes(n: int, operator: str = "ideal",
                  axes: Mapping[str, ScaleAxis] | None = None) -> list[int]:
    """The sizes an operator is measured at by default for images of ``n`` pixels (see the
    module docstring): the protocol's grid at ``n``, else ``ceil(n / 2) .. n - 1``; under
    ``scale-shift`` also every size below ``n`` on the grid of one of ``axes``."""
    known = authors_equivariance(n)
    if operator == "rahman-yeh" and known is not None:
        return list(known.sizes)
    grid = set(PROTOCOL_GRIDS.get(n, range(math.ceil(n / 2), n)))
    if operator == "scale-shift":
        grid |= {s for axis in (axes or {}).values() for s in range(1, n) if axis.pairs(n, s)}
    return sorted(grid)


def _checked_images(x: object) -> int:
    """The size ``N`` of a batch of square images ``(B, C, N, N)``; ValueError otherwise."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a tensor of images (B, C, N, N), got a {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (B, C, N, N), got shape {tuple(x.shape)}")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x must hold square images (B, C, N, N), got {x.shape[-2]}x"
                         f"{x.shape[-1]} (shape {tuple(x.shape)}): crop or resize them first")
    if x.shape[0] == 0 or x.shape[-1] < 2:
        raise ValueError(f"x must hold at least one image of at least 2x2 pixels, got shape "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point, got {x.dtype} (convert the images, e.g. "
                         "to float in [0, 1])")
    return int(x.shape[-1])


def _checked_operators(operators: str | Iterable[str]) -> list[str]:
    ops = list(dict.fromkeys([operators] if isinstance(operators, str) else operators))
    bad = [op for op in ops if op not in OPERATORS]
    if bad or not ops:
        named = ", ".join(map(repr, bad)) or "(none given)"
        raise ValueError(f"unknown equivariance operator(s) {named}; known: "
                         f"{', '.join(OPERATORS)}")
    return ops


def _checked_sizes(sizes: Iterable[int], n: int) -> list[int]:
    """``sizes`` as distinct integers in ``1..n-1``, in the order given; ValueError otherwise."""
    try:
        got = list(dict.fromkeys(_operator.index(s) for s in sizes))
    except TypeError:
        raise ValueError(f"sizes must be integers, got {sizes!r}") from None
    bad = [s for s in got if not 1 <= s < n]
    if bad or not got:
        raise ValueError(f"sizes must be integers from 1 to {n - 1} (below the images' size "
                         f"{n}); got {', '.join(map(str, bad)) if bad else 'none'}")
    return got


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode for the measurement, its own mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _measure(model: nn.Module, images: torch.Tensor, sizes: list[int], operators: list[str],
             axes: Mapping[str, ScaleAxis], input: str | None,
             device: torch.device | str | None, chunk: int
             ) -> dict[str, dict[str, dict[int, float]]]:
    """:func:`~bench.run.metrics.operator_errors` averaged over chunks of ``chunk`` images
    (weighted by count); ``device``: where each chunk goes (None: where ``images`` is);
    ``input`` None: no logits."""
    total: dict[str, dict[str, dict[int, float]]] = {}
    n = images.shape[0]
    canvas = images.shape[-1]
    logits = None if input is None else (lambda z: model(to_canvas(z, input, canvas)))
    for i in range(0, n, chunk):
        x = images[i:i + chunk]
        if device is not None:
            x = x.to(device)
        errs = operator_errors(model.features, logits, x, sizes, operators, axes)
        w = x.shape[0] / n
        for op, per_layer in errs.items():
            for layer, per_size in per_layer.items():
                acc = total.setdefault(op, {}).setdefault(layer, {})
                for s, v in per_size.items():
                    acc[s] = acc.get(s, 0.0) + w * v
    return total


def _result(operator: str, nested: dict[str, dict[int, float]], sizes: list[int], n: int,
            images: int, axes: Mapping[str, ScaleAxis]) -> EquivarianceResult:
    """The result of one operator from its measured ``{layer: {size: error}}`` (at the sizes
    of every operator measured with it: those not among ``sizes`` are dropped)."""
    keep = set(sizes)
    per_layer = {k: {s: v for s, v in d.items() if s in keep} for k, d in nested.items()}
    logits = per_layer.pop("logits", {})
    if operator == "rahman-yeh":
        layer = rahman_yeh_layer(per_layer, n)
        errs = per_layer[layer] if layer is not None else {}
        return EquivarianceResult(
            operator=operator, full_size=n, sizes=tuple(sizes), images=images,
            per_layer=per_layer, logits=logits, summary=authors_number(errs),
            summary_layer=layer, plain_summary=plain_mean(errs))
    shifted = operator == "scale-shift"
    layer = summary_layer(per_layer, axes if shifted else None)
    summary = scale_shift_headline(per_layer, axes) if shifted else headline_eq_err(per_layer)
    return EquivarianceResult(
        operator=operator, full_size=n, sizes=tuple(sizes), images=images,
        per_layer=per_layer, logits=logits, summary=summary, summary_layer=layer,
        left_out=scale_shift_left_out(axes, n, sizes) if shifted else {})


def check_operators(model: nn.Module, x: torch.Tensor,
                    operators: str | Iterable[str] = ("ideal",),
                    sizes: Iterable[int] | None = None, *, input: str = "native",
                    device: torch.device | str | None = None, chunk: int = 64,
                    logits: bool = True) -> dict[str, EquivarianceResult]:
    """:func:`check_equivariance` under several operators at once: ``{operator: result}``.

    ``ideal`` and ``scale-shift`` share their forward passes. With ``sizes`` None each
    operator gets its :func:`default_sizes`.
    """
    n = _checked_images(x)
    operators = _checked_operators(operators)
    if input not in INPUT_POLICIES:
        raise ValueError(f"unknown input policy {input!r}; known: {', '.join(INPUT_POLICIES)}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    if not callable(getattr(model, "features", None)):
        raise TypeError(f"{type(model).__name__} has no features(x) method returning its "
                        "feature maps by name; check_equivariance needs one")
    axes = scale_axes_of(model)
    given = None if sizes is None else _checked_sizes(sizes, n)
    per_op = {op: given or default_sizes(n, op, axes) for op in operators}
    union = sorted({s for grid in per_op.values() for s in grid})
    with _evaluating(model):
        measured = _measure(model, x, union if given is None else given, operators, axes,
                            input if logits else None, device, chunk)
    return {op: _result(op, measured[op], per_op[op], n, x.shape[0], axes) for op in operators}


def check_equivariance(model: nn.Module, x: torch.Tensor, operator: str = "ideal",
                       sizes: Iterable[int] | None = None, *, input: str = "native",
                       device: torch.device | str | None = None, chunk: int = 64,
                       logits: bool = True) -> EquivarianceResult:
    """The equivariance error of ``model`` on images ``x`` under ``operator``.

    ``model``: anything with ``features(x) -> {name: map}`` and ``model(x) -> logits``
    (every model of :func:`scaleqbench.methods.create`); ``x``: a batch of square
    images ``(B, C, N, N)`` at full size, floating point, of the model's dtype;
    ``operator``: one of :data:`bench.run.metrics.OPERATORS` (``ideal``,
    ``scale-shift``, ``bicubic``, ``lie``, ``rahman-yeh``); ``sizes``: the target sizes, integers in
    ``1..N-1`` (default: :func:`default_sizes`); ``input``: the input policy through
    which the logits see a shrunk image (``native``, ``pad``, ``upsample``);
    ``device``: where to move each chunk of ``chunk`` images (default: where ``x`` is;
    the model must be there too); ``logits`` False: the feature maps only (for a model
    without a classifier head). The model is measured in eval mode and left in the
    mode it was in. Raises ValueError naming what is wrong for a batch that is not
    square images, an unknown operator or input policy, or sizes out of range;
    NotImplementedError where the model's ``features`` raises it (no spatial maps).
    """
    if not isinstance(operator, str):
        raise ValueError(f"operator must be one of {', '.join(OPERATORS)}, got {operator!r} "
                         "(check_operators measures several at once)")
    return check_operators(model, x, (operator,), sizes, input=input, device=device,
                           chunk=chunk, logits=logits)[operator]
