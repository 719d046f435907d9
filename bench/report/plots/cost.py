"""The training-cost figure of a report: step time, achieved FLOP rate, throughput and peak
memory vs input size, from ``bench perf``'s JSON."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from scaleqbench.bench.report.plots import kit
from scaleqbench.bench.report.plots.kit import Palette

__all__ = ["perf_cost"]


def _panels(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, axis label) of each measure ``df`` holds a positive value of; adds the time per
    image, so that rows measured with different batch sizes are comparable."""
    panels = []
    if {"train_step_s", "batch"} <= set(df.columns):
        df["train_ms_per_img"] = 1000 * df.train_step_s / df.batch.where(df.batch > 0)
        panels.append(("train_ms_per_img", "training step time per image (ms)"))
    if "infer_img_per_s" in df.columns:
        panels.append(("infer_img_per_s", "inference throughput (img/s)"))
    if "peak_mem_mb" in df.columns:
        panels.append(("peak_mem_mb", "peak memory (MiB)"))
    if "gflop_per_s" in df.columns:  # bench perf's counted work per second of a step
        df["gflop_per_s"] = pd.to_numeric(df.gflop_per_s, errors="coerce")
        panels.append(("gflop_per_s", "achieved GFLOP/s (training step)"))
    return [(c, lab) for c, lab in panels if (df[c] > 0).any()]


def _step_intervals(ax, sub: pd.DataFrame, color: str) -> None:
    """The step time's interval over rounds (``train_step_s_interval``, where the rows have
    one; a size measured in several rows: each row's) as error bars per image."""
    if "train_step_s_interval" not in sub.columns:
        return
    for _, r in sub.iterrows():
        iv = r.train_step_s_interval
        if isinstance(iv, (list, tuple)) and len(iv) == 2 and r.batch > 0:
            lo, hi = (1000 * v / r.batch for v in iv)
            ax.vlines(r["size"], lo, hi, colors=color, linewidth=1.2)


def perf_cost(perf: pd.DataFrame | None, palette: Palette) -> Figure | None:
    """Training-step time per image (with its interval over rounds, where measured), achieved
    GFLOP/s (where measured), inference throughput and peak memory vs input size
    (``bench perf``)."""
    if perf is None or perf.empty:
        return None
    df = perf.copy()
    panels = _panels(df)
    if not panels:
        return None
    fig, axes = kit.figure(len(panels), width=4.6)
    for ax, (col, label) in zip(axes, panels):
        for method in kit.methods_of(df):
            # a log axis: a zero or negative peak-memory growth reading has no place on it
            sub = df[(df.method == method) & (df[col] > 0)]
            if sub.empty:
                continue
            agg = sub.groupby("size")[col].median().sort_index()
            (line,) = ax.plot(agg.index, agg.values, label=method, markersize=4,
                              **palette.style(method).kw())
            if col == "train_ms_per_img":
                _step_intervals(ax, sub, line.get_color())
        ax.set_yscale("log")
        kit.plain_log_labels(ax)
        kit.label_panel(ax, "input size (px)", label, grid="both")
    devices = ", ".join(str(d) for d in dict.fromkeys(df.get("device", pd.Series(dtype=str))))
    return kit.finish(fig, axes,
                      "training cost vs input size" + (f" ({devices})" if devices else ""))
