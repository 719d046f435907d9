"""What the run records from per-layer, per-size equivariance errors: the summary layer, the
headline ``eq_err`` (mean over sizes of the last spatial layer) and the ``scale-shift``
summary, and the scale-axis slices the shift leaves out (:mod:`bench.run.metrics` measures)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from scaleqbench.methods.scale_axis import ScaleAxis


def scale_shift_left_out(axes: Mapping[str, ScaleAxis], full: int, sizes: Iterable[int],
                         tol: float = 0.5) -> dict[str, dict[int, int]]:
    """Per axis-carrying layer and on-grid size: how many of its ``S`` slices of ``f(D_s x)``
    had no partner on the axis (left out of the ``scale-shift`` comparison)."""
    return {name: {s: axis.size - len(pairs) for s in sizes
                   if (pairs := axis.pairs(full, s, tol))}
            for name, axis in axes.items()}


def summary_layer(per_layer: Mapping[str, Mapping[int, float]],
                  axes: Mapping[str, ScaleAxis] | None = None) -> str | None:
    """The layer a summary averages: the last spatial layer with values (``logits`` excluded);
    with ``axes`` (``scale-shift``), the deepest of those that carries a scale axis, if any."""
    layers = [k for k in per_layer if k != "logits" and per_layer[k]]
    pick = [k for k in layers if k in (axes or {})] or layers
    return pick[-1] if pick else None


def _mean_over_sizes(per_layer: Mapping[str, Mapping[int, float]], layer: str | None) -> float:
    if layer is None:
        return float("nan")
    vals = list(per_layer[layer].values())
    return sum(vals) / len(vals)


def scale_shift_headline(per_layer: Mapping[str, Mapping[int, float]],
                         axes: Mapping[str, ScaleAxis]) -> float:
    """The ``scale-shift`` summary: the mean over its sizes of the deepest map that carries a
    scale axis (the last spatial layer when none does: then it is the ``ideal`` comparison).

    Not the last layer as for ``eq_err``: the lifted models here project their last
    map over scales, where the shift has nothing to move, so the last layer would
    only repeat ``eq_err``.
    """
    return _mean_over_sizes(per_layer, summary_layer(per_layer, axes))


def headline_eq_err(per_layer: Mapping[str, Mapping[int, float]]) -> float:
    """Mean over the size grid of the last spatial layer (``logits`` excluded)."""
    return _mean_over_sizes(per_layer, summary_layer(per_layer))
