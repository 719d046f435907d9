"""Figures of a report (matplotlib, no pyplot state): each function returns a Figure or None.

Every method keeps one colour and marker across every figure (:class:`Palette`):
the method registry says which (``methods.style_of``: the style a method
declared, else one derived from its name, the same in every report); options of
a method (``fourier[impl=x]``) keep its colour and marker and change the line style.

Equivariance errors are drawn on log axes without clipping: float-precision
errors (1e-30 … 1e-12) stay visible, and an exact zero, which a log axis cannot
show, is drawn on a dotted "exact 0" floor line a decade below the smallest
positive value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

# Figures are made without pyplot: no global figure registry, no GUI backend, and the caller's
# backend (a notebook's, say) is left alone; savefig renders PNG with Agg and PDF with the
# pdf backend on its own.
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from scaleqbench.bench.spec import base_method

__all__ = ["Palette", "Style", "acc_vs_eq", "acc_vs_size", "eq_per_layer", "eq_per_operator",
           "eq_vs_size",
           "learning_curves", "pareto_front", "perf_cost", "save_figure"]

LINESTYLES = ["-", "--", ":", "-."]


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str = "-"
    hollow: bool = False  # a method's variant: its marker hollow, so a lone point differs too

    def kw(self) -> dict:
        kw = {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}
        if self.hollow:
            kw["markerfacecolor"] = "white"
        return kw


class Palette:
    """One fixed style per method label, the same in every figure of a report."""

    def __init__(self, labels: list[str] | None = None):
        self._base: dict[str, tuple[str, str]] = {}
        self._variants: dict[str, list[str]] = {}
        for label in sorted(set(labels or [])):
            self.style(label)

    def _base_style(self, base: str) -> tuple[str, str]:
        if base not in self._base:
            # the registry (and its families and plugins) pulls in torch: loaded when a report
            # draws, not when the report package is imported
            from scaleqbench.methods import style_choices

            taken = set(self._base.values())
            choices = style_choices(base)
            want = next(choices)
            if (want.color, want.marker) in taken:
                # two methods of one report drawn alike (two derived styles that hash alike, or
                # a plugin that declared a style already used): the later name moves on
                want = next((s for s in choices if (s.color, s.marker) not in taken), want)
            self._base[base] = (want.color, want.marker)
        return self._base[base]

    def style(self, label: str) -> Style:
        base = base_method(label)
        color, marker = self._base_style(base)
        if base == label:
            return Style(color, marker)
        variants = self._variants.setdefault(base, [])
        if label not in variants:
            variants.append(label)
        return Style(color, marker, LINESTYLES[1 + variants.index(label) % (len(LINESTYLES) - 1)],
                     hollow=True)


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """``stem.png`` (150 dpi) and ``stem.pdf``, without timestamps so reruns are byte-stable."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=150, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None})
    return [png, pdf]


def _figure(ncols: int = 1, width: float = 6.4) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _methods(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["method"]))


def _agg(df: pd.DataFrame, x: str, y: str, spread: str) -> pd.DataFrame:
    """Per x: mean over seeds and the band (mean ± std, or min…max for log axes)."""
    g = df.groupby(x)[y]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "min": g.min(), "max": g.max(),
                        "n": g.count()}).sort_index()
    if spread == "std":
        out["lo"], out["hi"] = out["mean"] - out["std"], out["mean"] + out["std"]
    else:
        out["lo"], out["hi"] = out["min"], out["max"]
    return out


def _line(ax: Axes, agg: pd.DataFrame, label: str, style: Style, scale: float = 1.0) -> None:
    ax.plot(agg.index, scale * agg["mean"], label=label, markersize=4, linewidth=1.4, **style.kw())
    band = agg[agg["n"] > 1]
    if not band.empty:
        ax.fill_between(band.index, scale * band["lo"], scale * band["hi"], color=style.color,
                        alpha=0.18, linewidth=0)


def _plain_log_labels(ax: Axes) -> None:
    """Plain numbers ("20", "0.5") on a log y axis of a few decades, where the default
    "2 x 10^1" labels crowd; minor labels only while the axis spans under two decades."""
    lo, hi = ax.get_ylim()
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain if hi < 100 * lo else NullFormatter())


def _legend(fig: Figure, axes: list[Axes]) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        return
    if len(axes) == 1 and len(labels) <= 6:
        axes[0].legend(fontsize=8, frameon=False)
    else:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)


def _single_panel(fig: Figure, ax: Axes, xlabel: str, ylabel: str, title: str) -> Figure:
    """Label, title, grid and legend of a one-panel figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _legend(fig, [ax])
    return fig


def acc_vs_size(per_size: pd.DataFrame, palette: Palette, title: str,
                train_range: tuple[float, float] | None = None) -> Figure | None:
    """Test accuracy vs test size (or object scale bin) per method, mean ± std over seeds;
    ``train_range`` (first and last training size) is shaded: the sizes outside it were
    never seen in training (scale generalisation)."""
    if per_size.empty:
        return None
    fig, (ax,) = _figure()
    if train_range is not None:
        lo, hi = train_range
        ax.axvspan(lo - 0.5, hi + 0.5, color="#999999", alpha=0.18, linewidth=0,
                   label="training sizes", zorder=0)
    for method in _methods(per_size):
        sub = per_size[per_size.method == method]
        _line(ax, _agg(sub, "x", "acc", "std"), method, palette.style(method), scale=100)
    binned = bool(per_size["binned"].any())
    xlabel = "object scale (bin centre)" if binned else "test image size (px)"
    return _single_panel(fig, ax, xlabel, "test accuracy (%)", title)


def _log_floor(values: pd.Series) -> tuple[float, bool]:
    """Where an exact zero is drawn on a log axis, and whether there is one."""
    pos = values[values > 0]
    floor = float(pos.min()) / 10 if not pos.empty else 1e-40
    return floor, bool((values <= 0).any())


def _log_axis(ax: Axes, values: pd.Series, floor: float, has_zero: bool) -> None:
    ax.set_yscale("log")
    top = float(values.max()) if (values > 0).any() else 1.0
    # explicit limits: autoscaling a band that reaches down to 1e-30 must not drop a point
    ax.set_ylim(floor / 3, max(top * 3, floor * 30))
    if has_zero:
        ax.axhline(floor, color="#777777", linestyle=":", linewidth=0.8)
        ax.annotate("exact 0", (0.01, floor), xycoords=("axes fraction", "data"),
                    xytext=(0, 2), textcoords="offset points", fontsize=7, color="#555555")


def eq_vs_size(eq: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Equivariance error vs target size: last spatial layer and logits, log axis, seed range."""
    panels = [("last spatial layer", eq[eq.is_headline]), ("logits (invariance)", eq[eq.is_logits])]
    panels = [(name, df) for name, df in panels if not df.empty]
    if not panels:
        return None
    shown = pd.concat([df for _, df in panels])
    per_run = shown.groupby(["method", "seed", "layer", "size"])["err"].mean()
    floor, has_zero = _log_floor(per_run)
    fig, axes = _figure(len(panels), width=5.4)
    for ax, (name, df) in zip(axes, panels):
        for method in _methods(eq):
            sub = df[df.method == method]
            if sub.empty:
                continue
            sub = sub.assign(err=sub.err.where(sub.err > 0, floor))
            _line(ax, _agg(sub, "size", "err", "range"), method, palette.style(method))
        _log_axis(ax, per_run, floor, has_zero)
        ax.set_xlabel("target size s (px)")
        ax.set_ylabel("equivariance error")
        ax.set_title(f"{name}", fontsize=10)
        ax.grid(alpha=0.3, which="major")
    fig.suptitle(title, fontsize=10)
    _legend(fig, axes)
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
    floor, has_zero = _log_floor(per_run.err)
    per_run["err"] = per_run.err.where(per_run.err > 0, floor)
    fig, (ax,) = _figure()
    for method in _methods(eq):
        _line(ax, _agg(per_run[per_run.method == method], "x", "err", "range"), method,
              palette.style(method))
    _log_axis(ax, per_run.err, floor, has_zero)
    ticks = list(range(1, max_depth + 1)) + ([max_depth + 1] if per_run.is_logits.any() else [])
    ax.set_xticks(ticks, [str(t) if t <= max_depth else "logits" for t in ticks])
    return _single_panel(fig, ax, "layer (depth among the model's spatial layers)",
                         "equivariance error (mean over sizes)", title)


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
    floor, has_zero = _log_floor(per_run.err)
    per_run["err"] = per_run.err.where(per_run.err > 0, floor)
    fig, axes = _figure(len(operators), width=4.6)
    for ax, op in zip(axes, operators):
        sub = per_run[per_run.operator == op]
        for method in _methods(eq):
            rows = sub[sub.method == method]
            if not rows.empty:
                _line(ax, _agg(rows, "depth", "err", "range"), method, palette.style(method))
        _log_axis(ax, per_run.err, floor, has_zero)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (depth among the model's spatial layers)")
        ax.set_ylabel("equivariance error (mean over sizes)")
        ax.set_title(op, fontsize=10)
        ax.grid(alpha=0.3, which="major")
    fig.suptitle(title, fontsize=10)
    _legend(fig, axes)
    return fig


def pareto_front(err: list[float], acc: list[float]) -> list[int]:
    """Indices of the points no other point beats in both (lower error, higher accuracy)."""
    order = sorted(range(len(err)), key=lambda i: (err[i], -acc[i]))
    front, best = [], -math.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return front


def acc_vs_eq(board: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Test accuracy vs equivariance error per method (seed std as error bar), Pareto front."""
    df = board[board.test_acc_mean.notna() & board.eq_err.notna()].reset_index(drop=True)
    if df.empty:
        return None
    floor, has_zero = _log_floor(df.eq_err)
    x = df.eq_err.where(df.eq_err > 0, floor).tolist()
    y = (100 * df.test_acc_mean).tolist()
    fig, (ax,) = _figure()
    for i, method in enumerate(df.method):
        st = palette.style(method)
        yerr = 100 * df.test_acc_std[i] if pd.notna(df.test_acc_std[i]) else None
        kw = {**st.kw(), "linestyle": "none"}
        ax.errorbar([x[i]], [y[i]], yerr=yerr, label=method, markersize=7, capsize=3, **kw)
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
    return _single_panel(fig, ax, "equivariance error (log; lower is better)",
                         "test accuracy (%)", title)


def perf_cost(perf: pd.DataFrame | None, palette: Palette) -> Figure | None:
    """Training-step time per image and inference throughput vs input size (``bench perf``)."""
    if perf is None or perf.empty:
        return None
    df = perf.copy()
    panels = []
    if {"train_step_s", "batch"} <= set(df.columns):
        # per image, so rows measured with different batch sizes are comparable
        df["train_ms_per_img"] = 1000 * df.train_step_s / df.batch.where(df.batch > 0)
        panels.append(("train_ms_per_img", "training step time per image (ms)"))
    if "infer_img_per_s" in df.columns:
        panels.append(("infer_img_per_s", "inference throughput (img/s)"))
    if "peak_mem_mb" in df.columns:
        panels.append(("peak_mem_mb", "peak memory (MiB)"))
    panels = [(c, lab) for c, lab in panels if (df[c] > 0).any()]
    if not panels:
        return None
    fig, axes = _figure(len(panels), width=4.6)
    for ax, (col, label) in zip(axes, panels):
        for method in _methods(df):
            # a log axis: a zero or negative peak-memory growth reading has no place on it
            sub = df[(df.method == method) & (df[col] > 0)]
            if sub.empty:
                continue
            agg = sub.groupby("size")[col].median().sort_index()
            ax.plot(agg.index, agg.values, label=method, markersize=4, **palette.style(method).kw())
        ax.set_yscale("log")
        _plain_log_labels(ax)
        ax.set_xlabel("input size (px)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    devices = ", ".join(str(d) for d in dict.fromkeys(df.get("device", pd.Series(dtype=str))))
    fig.suptitle("training cost vs input size" + (f" ({devices})" if devices else ""), fontsize=10)
    _legend(fig, axes)
    return fig


def learning_curves(hist: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Train loss and validation accuracy per epoch (mean and seed range of ok runs; failed
    runs dotted, one line each, to show where they went wrong)."""
    if hist.empty:
        return None
    fig, axes = _figure(2, width=5.4)
    for ax, (col, label, scale) in zip(axes, [("train_loss", "train loss", 1.0),
                                              ("val_acc", "validation accuracy (%)", 100.0)]):
        for method in _methods(hist):
            st = palette.style(method)
            sub = hist[(hist.method == method) & hist[col].notna()]
            ok = sub[sub.status == "ok"]
            if not ok.empty:
                _line(ax, _agg(ok, "epoch", col, "range"), method, st, scale=scale)
            for k, (_, run) in enumerate(sub[sub.status != "ok"].groupby("seed")):
                # a method with no finished run still gets one legend entry
                ax.plot(run.epoch, scale * run[col], color=st.color, linestyle=":", linewidth=1,
                        label=f"{method} (failed)" if ok.empty and k == 0 else "_nolegend_")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    loss = hist.train_loss.dropna()
    # a log axis only pays when the loss spans more than a decade (e.g. a diverging run)
    if not loss.empty and (loss > 0).all() and loss.max() > 10 * loss.min():
        axes[0].set_yscale("log")
        _plain_log_labels(axes[0])
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=10)
    _legend(fig, axes)
    return fig
