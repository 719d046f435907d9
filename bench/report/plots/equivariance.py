"""The equivariance figures of a report: error vs target size, per layer, per operator, and
accuracy against error (with its Pareto front).

Errors are drawn on log axes without clipping: float-precision errors (1e-30 … 1e-12)
stay visible, and an exact zero, which a log axis cannot show, is drawn on a dotted
"exact 0" floor line a decade below the smallest positive value (:func:`.kit.log_floor`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from scaleqbench.bench.report.plots import kit
from scaleqbench.bench.report.plots.kit import Palette

__all__ = ["acc_vs_eq", "eq_per_layer", "eq_per_operator", "eq_vs_size", "eq_vs_size_by_family",
           "pareto_front"]

_DEPTH = "layer (depth among the model's spatial layers)"
_MEAN_ERR = "equivariance error (mean over sizes)"


def _floored(values: pd.Series, floor: float) -> pd.Series:
    """``values`` with an exact zero (or less) moved onto the log axis' ``floor``."""
    return values.where(values > 0, floor)


def _size_panels(eq: pd.DataFrame) -> tuple[list[tuple[str, pd.DataFrame]], pd.Series]:
    """The panels of the error-vs-size figures (last spatial layer, logits) that have data,
    and the per-run errors they show (for a shared log axis)."""
    panels = [("last spatial layer", eq[eq.is_headline]), ("logits (invariance)", eq[eq.is_logits])]
    panels = [(name, df) for name, df in panels if not df.empty]
    shown = pd.concat([df for _, df in panels]) if panels else eq
    return panels, shown.groupby(["method", "seed", "layer", "size"])["err"].mean()


def _size_line(ax, df: pd.DataFrame, method: str, palette: Palette, floor: float) -> None:
    sub = df[df.method == method]
    if not sub.empty:
        sub = sub.assign(err=_floored(sub.err, floor))
        kit.line(ax, kit.aggregate(sub, "size", "err"), method, palette.style(method),
                 floor=floor)


def eq_vs_size(eq: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Equivariance error vs target size: last spatial layer and logits, log axis; the mean
    over seeds and its 95 % interval as a band (stopped at the axis' floor)."""
    panels, per_run = _size_panels(eq)
    if not panels:
        return None
    floor, has_zero = kit.log_floor(per_run)
    fig, axes = kit.figure(len(panels), width=5.4)
    for ax, (name, df) in zip(axes, panels):
        for method in kit.methods_of(eq):
            _size_line(ax, df, method, palette, floor)
        kit.log_axis(ax, per_run, floor, has_zero)
        kit.label_panel(ax, "target size s (px)", "equivariance error", name)
    return kit.finish(fig, axes, title)


def eq_vs_size_by_family(eq: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """:func:`eq_vs_size` as small multiples: a row per measure (last spatial layer, logits),
    a column per method family (its methods in colour, the others thin and grey behind);
    None with fewer than two families."""
    panels, per_run = _size_panels(eq)
    groups = kit.by_family(kit.methods_of(eq), palette) if panels else []
    if len(groups) < 2:
        return None
    floor, has_zero = kit.log_floor(per_run)
    fig, axes = kit.grid(len(panels) * len(groups), width=3.0, height=2.8, nrows=len(panels))
    cells = [(p, g) for p in panels for g in groups]
    for ax, ((name, df), (family, members)) in zip(axes, cells):
        for method in kit.methods_of(eq):
            if method in members:
                _size_line(ax, df, method, palette, floor)
            elif not (sub := df[df.method == method]).empty:
                sub = sub.assign(err=_floored(sub.err, floor))
                kit.context_line(ax, kit.aggregate(sub, "size", "err"))
        kit.log_axis(ax, per_run, floor, has_zero)
        first_col = ax.get_subplotspec().is_first_col()
        kit.label_panel(ax, "target size s (px)", f"{name}\nequivariance error" if first_col
                        else "", family if name == panels[0][0] else None)
        if name == panels[0][0]:
            ax.legend(fontsize=7, frameon=False, loc="best")
    kit.title(fig, title)
    return fig


def eq_per_layer(eq: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Equivariance error per layer depth (mean over sizes), logits last; log axis."""
    if eq.empty:
        return None
    per_run = eq.groupby(["method", "seed", "layer", "depth", "is_logits"],
                         as_index=False)["err"].mean()
    spatial = per_run.loc[~per_run.is_logits, "depth"]
    max_depth = int(spatial.max()) if not spatial.empty else 0
    per_run["x"] = np.where(per_run.is_logits, max_depth + 1, per_run.depth)
    floor, has_zero = kit.log_floor(per_run.err)
    per_run["err"] = _floored(per_run.err, floor)
    fig, (ax,) = kit.figure()
    for method in kit.methods_of(eq):
        kit.line(ax, kit.aggregate(per_run[per_run.method == method], "x", "err"),
                 method, palette.style(method), floor=floor)
    kit.log_axis(ax, per_run.err, floor, has_zero)
    ticks = list(range(1, max_depth + 1)) + ([max_depth + 1] if per_run.is_logits.any() else [])
    ax.set_xticks(ticks, [str(t) if t <= max_depth else "logits" for t in ticks])
    return kit.single_panel(fig, ax, _DEPTH, _MEAN_ERR, title)


def eq_per_operator(eq: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Equivariance error per layer depth under each recorded operator, one panel each (shared
    log axis), logits left out; None unless at least two operators were recorded."""
    if eq.empty or "operator" not in eq:
        return None
    eq = eq[~eq.is_logits.astype(bool)]
    operators = list(dict.fromkeys(eq.operator))
    if len(operators) < 2:
        return None
    per_run = eq.groupby(["operator", "method", "seed", "layer", "depth"],
                         as_index=False)["err"].mean()
    floor, has_zero = kit.log_floor(per_run.err)
    per_run["err"] = _floored(per_run.err, floor)
    fig, axes = kit.figure(len(operators), width=4.6)
    for ax, op in zip(axes, operators):
        sub = per_run[per_run.operator == op]
        for method in kit.methods_of(eq):
            rows = sub[sub.method == method]
            if not rows.empty:
                kit.line(ax, kit.aggregate(rows, "depth", "err"), method,
                         palette.style(method), floor=floor)
        kit.log_axis(ax, per_run.err, floor, has_zero)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        kit.label_panel(ax, _DEPTH, _MEAN_ERR, op)
    return kit.finish(fig, axes, title)


def pareto_front(err: list[float], acc: list[float]) -> list[int]:
    """Indices of the points no other point beats in both (lower error, higher accuracy)."""
    order = sorted(range(len(err)), key=lambda i: (err[i], -acc[i]))
    front, best = [], -math.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return front


def _bar(mean: float, lo, hi, scale: float = 1.0, floor: float | None = None):
    """An asymmetric error bar ``[[below], [above]]`` from an interval, None without one."""
    if not (pd.notna(lo) and pd.notna(hi)):
        return None
    lo = max(lo, floor) if floor is not None else lo
    return [[scale * max(mean - lo, 0.0)], [scale * max(hi - mean, 0.0)]]


def acc_vs_eq(board: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Test accuracy vs equivariance error per method, each with the 95 % intervals of the
    leaderboard as error bars (where it has them), and the Pareto front."""
    df = board[board.test_acc_mean.notna() & board.eq_err.notna()].reset_index(drop=True)
    if df.empty:
        return None
    floor, has_zero = kit.log_floor(df.eq_err)
    x = _floored(df.eq_err, floor).tolist()
    y = (100 * df.test_acc_mean).tolist()
    fig, (ax,) = kit.figure()
    for i, row in df.iterrows():
        st = palette.style(row.method)
        kw = {**st.kw(), "linestyle": "none"}
        ax.errorbar([x[i]], [y[i]], label=row.method, markersize=7, capsize=3,
                    yerr=_bar(row.test_acc_mean, row.get("test_acc_lo"), row.get("test_acc_hi"),
                              100),
                    xerr=_bar(x[i], row.get("eq_err_lo"), row.get("eq_err_hi"), floor=floor),
                    **kw)
    front = pareto_front(x, y)
    ax.plot([x[i] for i in front], [y[i] for i in front], drawstyle="steps-post",
            color="#555555", linestyle="--", linewidth=1, label="Pareto front", zorder=0)
    ax.scatter([x[i] for i in front], [y[i] for i in front], s=180, facecolors="none",
               edgecolors="#555555", linewidths=1, zorder=0)
    ax.set_xscale("log")
    ax.set_xlim(floor / 3, max(max(x) * 3, floor * 30))
    if has_zero:
        ax.axvline(floor, color="#777777", linestyle=":", linewidth=0.8)
        ax.annotate("exact 0", (floor, 0.01), xycoords=("data", "axes fraction"), rotation=90,
                    xytext=(2, 0), textcoords="offset points", fontsize=7, color="#555555")
    return kit.single_panel(fig, ax, "equivariance error (log; lower is better)",
                        "test accuracy (%)", title)
