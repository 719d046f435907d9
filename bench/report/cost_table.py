"""The training-cost table of a report: ``bench perf``'s rows as a table (Markdown and HTML),
beside the training-cost figure.

One row per row of the perf JSON, in its order: the step time with its interval over rounds,
the time per image, the counted work and its rate, inference throughput, peak memory and,
from ``bench perf --contention``, the slowdown beside a busy neighbour and its ratio to the
baseline loop's. A column none of the rows has (an older perf JSON without the work, or a
run without contention) is left out; a missing value in a kept column reads ``—``.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd

from scaleqbench.bench.formatting import MISSING, finite, with_interval

__all__ = ["COST_COLUMNS", "cost_rows", "cost_html", "cost_markdown", "cost_notes"]


def _value(r: pd.Series, key: str, fmt: str, unit: str = "") -> str:
    """``r[key]`` (``—`` where missing), with its ``[lo–hi]`` where the row has one."""
    return with_interval(r.get(key), r.get(f"{key}_interval"), fmt, unit)


def _per_image_ms(r: pd.Series) -> str:
    t, b = finite(r.get("train_step_s")), finite(r.get("batch"))
    return MISSING if t is None or not b else f"{1000 * t / b:.3g}"


#: (header, the perf column that must be present, cell) of every column, in order
COST_COLUMNS: list[tuple[str, str, Callable[[pd.Series], str]]] = [
    ("method", "method", lambda r: str(r["method"])),
    ("size (px)", "size", lambda r: f"{int(r['size'])}"),
    ("batch", "batch", lambda r: f"{int(r['batch'])}"),
    ("train step (s)", "train_step_s", lambda r: _value(r, "train_step_s", ".3f")),
    ("ms / image", "train_step_s", _per_image_ms),
    ("GFLOP", "gflop", lambda r: _value(r, "gflop", ".4g")),
    ("GFLOP/s", "gflop_per_s", lambda r: _value(r, "gflop_per_s", ".1f")),
    ("infer (img/s)", "infer_img_per_s", lambda r: _value(r, "infer_img_per_s", ".0f")),
    ("peak mem (MiB)", "peak_mem_mb", lambda r: _value(r, "peak_mem_mb", ".0f")),
    ("busy / quiet", "contention_ratio", lambda r: _value(r, "contention_ratio", ".2f", "×")),
    ("vs baseline", "contention_vs_baseline",
     lambda r: _value(r, "contention_vs_baseline", ".2f", "×")),
]


def cost_rows(perf: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of every row, for the columns ``perf`` has."""
    cols = [c for c in COST_COLUMNS if c[1] in perf.columns and perf[c[1]].notna().any()]
    return [h for h, _, _ in cols], [[cell(r) for _, _, cell in cols] for _, r in perf.iterrows()]


def cost_notes(perf: pd.DataFrame) -> list[str]:
    """What the table's numbers are, in sentences under it."""
    first = perf.iloc[0]
    notes = [f"From `bench perf` on {first.get('device', 'an unnamed device')}: the median "
             "over timed rounds of one training step (forward, backward, optimiser); "
             "timings compare only within one run."]
    if "train_step_s_interval" in perf.columns:
        rounds = finite(first.get("timed_rounds"))
        cover = finite(first.get("interval_coverage"))
        notes.append("[lo–hi]: the median's interval between two order statistics"
                     + (f" over {int(rounds)} rounds" if rounds else "")
                     + (f" ({100 * cover:.1f}% coverage)" if cover else "")
                     + "; medians whose intervals overlap are not told apart.")
    if "gflop" in perf.columns:
        notes.append("GFLOP: the step's counted work, forward and backward, FFTs included; "
                     "GFLOP/s: that work over the step time.")
    if "peak_mem_def" in perf.columns:
        kinds = ", ".join(sorted(set(perf.peak_mem_def.dropna()) - {""}))
        if kinds:
            notes.append(f"Peak memory: {kinds}.")
    if "contention_ratio" in perf.columns:
        notes.append("busy / quiet: the step's slowdown beside a busy neighbour process on as "
                     "many threads; vs baseline: that slowdown over a plain compute-bound "
                     "loop's in the same round (below 1: slowed less).")
    return notes


def cost_markdown(perf: pd.DataFrame) -> str:
    """The table in Markdown (GitHub's pipes), with its notes below."""
    header, rows = cost_rows(perf)
    align = ["---" if i == 0 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(cells) + " |" for cells in [header, align, *rows]]
    return "\n".join(lines + [""] + [f"- {n}" for n in cost_notes(perf)]) + "\n"


def _cell_html(cell: str) -> str:
    """A cell, its interval (if any) on a line of its own in the leaderboard's style."""
    value, sep, interval = cell.partition(" [")
    return html.escape(value) + (f'<span class="ci">[{html.escape(interval)}</span>' if sep else "")


def cost_html(perf: pd.DataFrame, method_key: Callable[[str], str] | None = None) -> str:
    """The table in HTML (``method_key``: the figures' key before a method's name), its notes
    in a list below."""
    header, rows = cost_rows(perf)
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = []
    for cells in rows:
        first = (method_key(cells[0]) if method_key else "") + e(cells[0])
        rest = "".join(f"<td>{_cell_html(c)}</td>" for c in cells[1:])
        body.append(f'<tr><td class="method">{first}</td>{rest}</tr>')
    notes = "".join(f"<li>{e(n)}</li>" for n in cost_notes(perf))
    return (f'<div class="scroll"><table class="cost"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div><ul class="note">{notes}</ul>')
