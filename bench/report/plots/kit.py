"""What every figure of a report shares: a fixed style per method (:class:`Palette`), the
figure and its panels (one per method family for small multiples), lines with their 95 %
interval over seeds as a band, log axes that show an exact zero, legends, and saving (PNG
and PDF, byte-stable).

Figures are made without pyplot: no global figure registry, no GUI backend, and the
caller's backend (a notebook's, say) is left alone; ``savefig`` renders PNG with Agg and
PDF with the pdf backend on its own.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from scaleqbench.bench.spec_parsing import base_method

__all__ = ["FAMILY_ORDER", "LINESTYLES", "Palette", "Style", "aggregate", "by_family", "figure",
           "context_line", "finish", "grid", "label_panel", "legend", "line", "log_axis",
           "log_floor", "methods_of",
           "plain_log_labels", "save_figure", "single_panel", "tint", "title"]

LINESTYLES = ["-", "--", ":", "-."]
#: how much lighter each variant of a method is drawn (a mix with white), in turn
TINTS = [0.45, 0.65, 0.25]
#: the order of the small multiples' panels; other families follow alphabetically
FAMILY_ORDER = ["baseline", "fourier", "scale-equivariant", "scale-invariant"]
#: the band of :func:`aggregate`: the 95 % Student t interval of the mean over seeds
CONFIDENCE = 0.95


def tint(color: str, amount: float) -> str:
    """``color`` mixed with white (``amount`` 0: itself, 1: white)."""
    return to_hex([c + (1 - c) * amount for c in to_rgb(color)])


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
    """One fixed style per method label, the same in every figure (and on the page) of a
    report: a method's own (colour, marker), distinct from every other method's; a variant
    of it (``fourier[impl=x]``) its marker, hollow, a lighter tint of its colour and another
    line style."""

    def __init__(self, labels: list[str] | None = None):
        self._base: dict[str, tuple[str, str]] = {}
        self._variants: dict[str, list[str]] = {}
        self._families: dict[str, str] = {}
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
        k = variants.index(label)
        return Style(tint(color, TINTS[k % len(TINTS)]), marker,
                     LINESTYLES[1 + k % (len(LINESTYLES) - 1)], hollow=True)

    def family(self, label: str) -> str:
        """The family of a label's method (``methods.family_of``; ``other`` when unknown)."""
        base = base_method(label)
        if base not in self._families:
            from scaleqbench.methods import family_of

            self._families[base] = family_of(base) or "other"
        return self._families[base]


def by_family(labels: list[str], palette: Palette) -> list[tuple[str, list[str]]]:
    """``labels`` grouped by family, families in :data:`FAMILY_ORDER` then alphabetically."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(palette.family(label), []).append(label)
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(groups.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """``stem.png`` (150 dpi) and ``stem.pdf``, without timestamps so reruns are byte-stable."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=150, metadata={"Software": None})
    fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None})
    return [png, pdf]


def figure(ncols: int = 1, width: float = 6.4, nrows: int = 1, height: float = 4.2,
           sharey: bool = False) -> tuple[Figure, list[Axes]]:
    """A figure of ``nrows`` x ``ncols`` panels (``width`` and ``height`` each), row by row."""
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height * nrows),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, [ax for row in axes for ax in row]


def methods_of(df: pd.DataFrame) -> list[str]:
    """The methods of ``df`` in order of first appearance."""
    return list(dict.fromkeys(df["method"]))


def aggregate(df: pd.DataFrame, x: str, y: str, spread: str = "ci") -> pd.DataFrame:
    """Per x: mean over seeds and the band: ``ci`` the 95 % Student t interval of the mean
    (the leaderboard's, :func:`bench.stats.t_interval`), ``std`` mean ± one standard
    deviation, ``range`` min…max. No band where there is one seed."""
    from scipy.stats import t as student_t

    g = df.groupby(x)[y]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "min": g.min(), "max": g.max(),
                        "n": g.count()}).sort_index()
    if spread == "ci":
        half = [student_t.ppf((1 + CONFIDENCE) / 2, n - 1) * s / math.sqrt(n) if n > 1
                else math.nan for n, s in zip(out["n"], out["std"])]
        out["lo"], out["hi"] = out["mean"] - half, out["mean"] + half
    elif spread == "std":
        out["lo"], out["hi"] = out["mean"] - out["std"], out["mean"] + out["std"]
    else:
        out["lo"], out["hi"] = out["min"], out["max"]
    return out


def line(ax: Axes, agg: pd.DataFrame, label: str, style: Style, scale: float = 1.0,
         floor: float | None = None, bounds: tuple[float, float] | None = None) -> None:
    """The mean of an :func:`aggregate` as a line, its band shaded where there are seeds
    (``floor``: a log axis' floor, where a band reaching below it stops; ``bounds``: the range
    the quantity can take, e.g. ``(0, 1)`` for an accuracy, where a t interval over a few
    seeds that reaches past it is cut: the drawing only, the tables keep the interval)."""
    ax.plot(agg.index, scale * agg["mean"], label=label, markersize=4, linewidth=1.4, **style.kw())
    band = agg[agg["n"] > 1]
    if not band.empty:
        lo = band["lo"] if floor is None else band["lo"].clip(lower=floor)
        hi = band["hi"]
        if bounds is not None:
            lo, hi = lo.clip(*bounds), hi.clip(*bounds)
        ax.fill_between(band.index, scale * lo, scale * hi, color=style.color,
                        alpha=0.18, linewidth=0)


def context_line(ax: Axes, agg: pd.DataFrame, scale: float = 1.0) -> None:
    """Another family's method in a small-multiples panel: a thin light grey line behind the
    panel's own methods, for context, without a legend entry."""
    ax.plot(agg.index, scale * agg["mean"], color="#CCCCCC", linewidth=0.8, zorder=0,
            label="_nolegend_")


def grid(n: int, width: float = 3.6, height: float = 3.1, nrows: int | None = None,
         sharey: bool = True) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels for small multiples: ``nrows`` rows of ``n / nrows``, or (no
    ``nrows``) up to three panels a row (two when there are four); unused panels hidden."""
    if nrows is None:
        ncols = 2 if n == 4 else min(n, 3)
        nrows = math.ceil(n / ncols)
    else:
        ncols = math.ceil(n / nrows)
    fig, axes = figure(ncols, width, nrows, height, sharey=sharey)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def plain_log_labels(ax: Axes) -> None:
    """Plain numbers ("20", "0.5") on a log y axis of a few decades, where the default
    "2 x 10^1" labels crowd; minor labels, at 2 and 5 times a power of ten only, while the
    axis spans under two decades (every minor tick labelled would run into each other)."""
    lo, hi = ax.get_ylim()
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(_two_or_five) if hi < 100 * lo
                                 else NullFormatter())


def _two_or_five(v: float, _pos=None) -> str:
    """``v`` plainly where it is 2 or 5 times a power of ten, else no label."""
    if v <= 0:
        return ""
    mantissa = v / 10 ** math.floor(math.log10(v))
    return f"{v:g}" if min(abs(mantissa - 2), abs(mantissa - 5)) < 1e-6 else ""


def legend(fig: Figure, axes: list[Axes]) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        return
    if len(axes) == 1 and len(labels) <= 6:
        axes[0].legend(fontsize=8, frameon=False)
    else:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)


def label_panel(ax: Axes, xlabel: str, ylabel: str, title: str | None = None,
                grid: str = "major") -> None:
    """Axis labels, the panel's title and a light grid (``grid``: which ticks get lines)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which=grid)


def single_panel(fig: Figure, ax: Axes, xlabel: str, ylabel: str, title: str) -> Figure:
    """Label, title, grid and legend of a one-panel figure; the title is wrapped to the width
    the panel keeps beside a legend placed outside it, so that it runs into neither the
    legend nor the figure's edges."""
    label_panel(ax, xlabel, ylabel, _wrapped(title, 0.62 * fig.get_figwidth()))
    legend(fig, [ax])
    return fig


def _wrapped(text: str, inches: float) -> str:
    """``text`` wrapped at word boundaries to lines of ``inches`` at font size 10."""
    return textwrap.fill(text, max(30, int(inches * 11)))  # ~11 characters per inch


def title(fig: Figure, text: str) -> None:
    """The figure's title; one too long for a line of the figure's width is wrapped at word
    boundaries rather than cut at its edges."""
    fig.suptitle(_wrapped(text, fig.get_figwidth()), fontsize=10)


def finish(fig: Figure, axes: list[Axes], text: str) -> Figure:
    """The title and the shared legend of a figure."""
    title(fig, text)
    legend(fig, axes)
    return fig


def log_floor(values: pd.Series) -> tuple[float, bool]:
    """Where an exact zero is drawn on a log axis (a decade below the smallest positive
    value), and whether there is one."""
    pos = values[values > 0]
    floor = float(pos.min()) / 10 if not pos.empty else 1e-40
    return floor, bool((values <= 0).any())


def log_axis(ax: Axes, values: pd.Series, floor: float, has_zero: bool) -> None:
    """A log y axis that shows every one of ``values``, with a dotted "exact 0" line at
    ``floor`` when ``has_zero``."""
    ax.set_yscale("log")
    top = float(values.max()) if (values > 0).any() else 1.0
    # explicit limits: autoscaling a band that reaches down to 1e-30 must not drop a point
    ax.set_ylim(floor / 3, max(top * 3, floor * 30))
    if has_zero:
        ax.axhline(floor, color="#777777", linestyle=":", linewidth=0.8)
        ax.annotate("exact 0", (0.01, floor), xycoords=("axes fraction", "data"),
                    xytext=(0, 2), textcoords="offset points", fontsize=7, color="#555555")
