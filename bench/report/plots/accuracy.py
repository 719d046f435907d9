"""The accuracy figures of a report: test accuracy vs test size (scale generalisation) and
the learning curves of training."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from scaleqbench.bench.report.plots import kit
from scaleqbench.bench.report.plots.kit import Palette

__all__ = ["acc_vs_size", "acc_vs_size_by_family", "learning_curves"]


def _shade_training(ax, train_range: tuple[float, float] | None, label: bool = True) -> None:
    if train_range is not None:
        lo, hi = train_range
        ax.axvspan(lo - 0.5, hi + 0.5, color="#999999", alpha=0.18, linewidth=0,
                   label="training sizes" if label else "_nolegend_", zorder=0)


#: what an accuracy can be: its bands are drawn within it
_ACCURACY = (0.0, 1.0)


def _size_ticks(ax, per_size: pd.DataFrame) -> None:
    """Whole pixels on a test-size axis (sizes are integers; object-scale bins are not)."""
    if not bool(per_size["binned"].any()):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _xlabel(per_size: pd.DataFrame) -> str:
    binned = bool(per_size["binned"].any())
    return "object scale (bin centre)" if binned else "test image size (px)"


def acc_vs_size(per_size: pd.DataFrame, palette: Palette, title: str,
                train_range: tuple[float, float] | None = None) -> Figure | None:
    """Test accuracy vs test size (or object scale bin) per method: the mean over seeds and its
    95 % interval as a band; ``train_range`` (first and last training size) is shaded: the
    sizes outside it were never seen in training (scale generalisation)."""
    if per_size.empty:
        return None
    fig, (ax,) = kit.figure()
    _shade_training(ax, train_range)
    for method in kit.methods_of(per_size):
        sub = per_size[per_size.method == method]
        kit.line(ax, kit.aggregate(sub, "x", "acc"), method, palette.style(method), scale=100,
                 bounds=_ACCURACY)
    _size_ticks(ax, per_size)
    return kit.single_panel(fig, ax, _xlabel(per_size), "test accuracy (%)", title)


def acc_vs_size_by_family(per_size: pd.DataFrame, palette: Palette, title: str,
                          train_range: tuple[float, float] | None = None) -> Figure | None:
    """:func:`acc_vs_size` as small multiples: one panel per method family (its methods in
    their colours, the others thin and grey behind them, a shared y axis); None with fewer
    than two families (the single figure already shows them apart)."""
    if per_size.empty:
        return None
    groups = kit.by_family(kit.methods_of(per_size), palette)
    if len(groups) < 2:
        return None
    aggs = {m: kit.aggregate(per_size[per_size.method == m], "x", "acc")
            for m in kit.methods_of(per_size)}
    fig, axes = kit.grid(len(groups))
    for ax, (family, members) in zip(axes, groups):
        _shade_training(ax, train_range, label=False)
        for method, agg in aggs.items():
            if method not in members:
                kit.context_line(ax, agg, scale=100)
        for method in members:
            kit.line(ax, aggs[method], method, palette.style(method), scale=100,
                     bounds=_ACCURACY)
        _size_ticks(ax, per_size)
        first_col = ax.get_subplotspec().is_first_col()
        kit.label_panel(ax, _xlabel(per_size), "test accuracy (%)" if first_col else "", family)
        ax.legend(fontsize=7, frameon=False, loc="best")
    kit.title(fig, title)
    return fig


def learning_curves(hist: pd.DataFrame, palette: Palette, title: str) -> Figure | None:
    """Train loss and validation accuracy per epoch (mean and seed range of ok runs; failed
    runs dotted, one line each, to show where they went wrong)."""
    if hist.empty:
        return None
    fig, axes = kit.figure(2, width=5.4)
    for ax, (col, label, scale) in zip(axes, [("train_loss", "train loss", 1.0),
                                              ("val_acc", "validation accuracy (%)", 100.0)]):
        for method in kit.methods_of(hist):
            st = palette.style(method)
            sub = hist[(hist.method == method) & hist[col].notna()]
            ok = sub[sub.status == "ok"]
            if not ok.empty:
                kit.line(ax, kit.aggregate(ok, "epoch", col, "range"), method, st, scale=scale,
                         bounds=_ACCURACY if col == "val_acc" else None)
            for k, (_, run) in enumerate(sub[sub.status != "ok"].groupby("seed")):
                # a method with no finished run still gets one legend entry
                ax.plot(run.epoch, scale * run[col], color=st.color, linestyle=":", linewidth=1,
                        label=f"{method} (failed)" if ok.empty and k == 0 else "_nolegend_")
        kit.label_panel(ax, "epoch", label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss = hist.train_loss.dropna()
    # a log axis only pays when the loss spans more than a decade (e.g. a diverging run)
    if not loss.empty and (loss > 0).all() and loss.max() > 10 * loss.min():
        axes[0].set_yscale("log")
        kit.plain_log_labels(axes[0])
    return kit.finish(fig, axes, title)
