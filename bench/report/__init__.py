"""``bench report``: comparison tables, figures and a self-contained HTML page from run records.

:func:`build_report` reads any number of experiment folders and writes, into
``out_dir``: ``leaderboard.md`` / ``.csv`` / ``.tex`` (one section per
protocol: dataset, source, preset and any other protocol field such as
epochs; every metric's mean with its 95 % interval, the rows no test tells from
the best of a column in bold, tied rank ranges, an average-rank summary over
several sections; published reference numbers with the delta to ours),
``figures/*.png`` and ``*.pdf`` (bands and error bars: the same intervals), and
``index.html`` (everything inlined; a glossary beside the tables; links to the
record of every run).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scaleqbench.bench.store.atomic_io import atomic_write_text
from scaleqbench.bench.store.collection import Collection
from scaleqbench.bench.report import plots, significance, tables
from scaleqbench.bench.report.cost_table import cost_markdown
from scaleqbench.bench.report.data import (
    ReportData,
    eq_frame,
    eq_ops_frame,
    history_frame,
    in_section,
    input_labels,
    load,
    per_size_frame,
    section_slug,
    section_title,
    sections,
)
from scaleqbench.bench.report.html import RANKS_FIGURE, FigureEntry, render_html

__all__ = ["build_report", "input_labels", "make_figures", "palette_of"]

log = logging.getLogger(__name__)
#: what the bands of the figures are (the leaderboard's intervals, per point)
BAND = "mean over seeds, band: its 95 % Student t interval (none with one seed)"


def _train_range(per_size: pd.DataFrame) -> tuple[float, float] | None:
    """The sizes a section's runs were trained on, when they are fewer than it tests."""
    if per_size.empty or per_size.trained.all():
        return None
    trained = per_size.x[per_size.trained.astype(bool)]
    return (float(trained.min()), float(trained.max())) if not trained.empty else None


def palette_of(data: ReportData) -> plots.Palette:
    """The styles of every method label a report's figures and page show."""
    labels = list(data.runs.method) + (list(data.perf.method) if data.perf is not None else [])
    for key in sections(data.runs):
        labels += list(input_labels(in_section(data.runs, key)).method)
    return plots.Palette(labels)


def make_figures(data: ReportData, board: pd.DataFrame, fig_dir: Path,
                 palette: plots.Palette | None = None) -> list[FigureEntry]:
    """Draw and save every figure the data supports (a figure without data is left out)."""
    palette = palette or palette_of(data)
    per_size, eq, hist = (per_size_frame(data.records), eq_frame(data.records),
                          history_frame(data.records))
    eq_ops = eq_ops_frame(data.records)
    entries: list[FigureEntry] = []

    def add(fig, name: str, title: str, caption: str, key=None) -> None:
        if fig is None:
            return
        png, pdf = plots.save_figure(fig, fig_dir / name)
        entries.append(FigureEntry(name, title, caption, png, pdf, key))

    for key in sections(data.runs):
        title, tag = section_title(key), section_slug(key)
        sec_size = input_labels(in_section(per_size, key))
        train_range = _train_range(sec_size)
        acc_caption = (BAND + (" (grey: the sizes the models were trained on)" if train_range
                               else "")
                       + ("; BatchNorm statistics re-estimated per size where the input is "
                          "native (the accuracy the leaderboard judges)"
                          if sec_size.recal.any() else "") + ".")
        add(plots.acc_vs_size(sec_size, palette, title, train_range), f"acc_vs_size-{tag}",
            "Test accuracy vs test size", acc_caption, key)
        add(plots.acc_vs_size_by_family(sec_size, palette, title, train_range),
            f"acc_vs_size_by_family-{tag}", "Test accuracy vs test size, by family",
            "One panel per method family, the other families thin and grey behind it; "
            + acc_caption, key)
        sec_eq = input_labels(in_section(eq, key))
        eq_caption = ("Last spatial layer and logits; log axis; " + BAND + ", stopped at the "
                      "axis' floor; an exact zero is drawn on the dotted floor line.")
        add(plots.eq_vs_size(sec_eq, palette, title), f"eq_vs_size-{tag}",
            "Equivariance error vs target size", eq_caption, key)
        add(plots.eq_vs_size_by_family(sec_eq, palette, title), f"eq_vs_size_by_family-{tag}",
            "Equivariance error vs target size, by family",
            "A column per method family, the other families thin and grey behind it. "
            + eq_caption, key)
        add(plots.eq_per_layer(sec_eq, palette, title), f"eq_per_layer-{tag}",
            "Equivariance error per layer", f"Mean over target sizes; {BAND}.", key)
        add(plots.eq_per_operator(input_labels(in_section(eq_ops, key)), palette, title),
            f"eq_per_operator-{tag}", "Equivariance error per operator",
            "Each panel one operator (docs/architecture.md): ideal low-pass, and scale-shift, "
            "which moves a lifted map along its declared scale axis and is averaged over the sizes "
            f"on that axis's grid (maps without an axis: the ideal comparison). Mean over "
            f"sizes; {BAND}.", key)
        add(plots.acc_vs_eq(input_labels(in_section(board, key)), palette, title),
            f"acc_vs_eq-{tag}",
            "Accuracy vs equivariance error",
            "Error bars: the leaderboard's 95 % intervals (over seeds, or with one seed over "
            "test images where the records allow); dashed: the Pareto front (no method is both "
            "more accurate and more equivariant than a circled one).", key)
        add(plots.learning_curves(input_labels(in_section(hist, key)), palette, title),
            f"learning_curves-{tag}", "Learning curves",
            "Train loss and validation accuracy per epoch; mean over finished runs, band: seed "
            "range; dotted: failed runs.", key)
    _overall_figures(data, board, palette, add)
    return entries


def _overall_figures(data: ReportData, board: pd.DataFrame, palette: plots.Palette,
                     add) -> None:
    """The figures of the whole report (not of one section): the critical-difference diagram
    of several sections and the training cost."""
    found = significance.rank_summary(board, tables.section_frames(board)) if len(board) else None
    if found is not None:
        frame, res = found
        add(plots.cd_diagram(frame, res.cd, res.k, palette, "average rank of test accuracy"),
            RANKS_FIGURE, "Average ranks over the comparisons",
            f"Critical-difference diagram (Demšar 2006): each method at its average rank over "
            f"{res.n} comparisons (1 the best); a thick line joins methods whose average ranks "
            f"differ by less than the Nemenyi critical difference (α = {res.alpha:g}).")
    add(plots.perf_cost(data.perf, palette), "training_cost", "Training cost vs input size",
        "From `bench perf`: training-step time per image (bars: its interval over rounds), "
        "inference throughput, peak memory and the achieved GFLOP/s; median over the measured "
        "batch sizes; timings compare only within one run.")


def build_report(source: Collection | Sequence[str | Path], out_dir: Path,
                 perf_json: Path | None = None) -> list[Path]:
    """Write the report of ``source`` (loaded records, or folders) into ``out_dir``; return
    the files written.

    Raises :class:`bench.errors.NoRecordsError` when a folder holds no records.
    ``perf_json`` (``bench perf``'s output) adds the training-cost table (``training_cost.md``
    and on the page) and figure when it exists.
    """
    out_dir = Path(out_dir)
    data = load(source, perf_json=perf_json)
    board = tables.leaderboard(data)
    palette = palette_of(data)
    written: list[Path] = []
    texts = [("leaderboard.md", tables.to_markdown(board, data)),
             ("leaderboard.csv", tables.to_csv(board)),
             ("leaderboard.tex", tables.to_latex(board, data))]
    if data.perf is not None and not data.perf.empty:
        texts.append(("training_cost.md", cost_markdown(data.perf)))
    for name, text in texts:
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    figures = make_figures(data, board, out_dir / "figures", palette)
    for f in figures:
        written += [f.png, f.pdf]
    page = render_html(data, board, figures, out_dir, tables.table_notes(data, board),
                       written[:len(texts)], palette)
    atomic_write_text(out_dir / "index.html", page)
    written.append(out_dir / "index.html")
    log.info("report: %d files in %s", len(written), out_dir)
    return written
