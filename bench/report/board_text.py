"""The words around a leaderboard table: what its columns mean, which cells are bold, the
notes on its intervals and tests, and the average-rank summary over several comparisons.

Shared by the terminal leaderboard, ``leaderboard.md`` / ``.tex`` and the report page, so
that every one of them says the same thing about the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from scaleqbench.bench import stats
from scaleqbench.bench.report import significance

__all__ = ["GLOSSARY", "METRIC_HEADERS", "mark_tied", "rank_summary_table", "rank_summary_text",
           "significance_notes", "tied_mask"]

#: the displayed header of each metric of :data:`significance.METRICS`, in its order
METRIC_HEADERS = ["test acc (%)", "scale consist. (%)", "equiv. err", "logit inv. err"]

#: column header -> what it means (the page's glossary and its header tooltips)
GLOSSARY: dict[str, str] = {
    "method": "The method and its options.",
    "input": "How a smaller test image reaches the model: native (as it is), pad (zero-padded "
             "onto the full-size canvas) or upsample.",
    "rank": "The ranks of test accuracy the tests allow (1 the best); 1–3: the tests do not "
            "order the method more finely.",
    "params": "Trainable parameters.",
    "test acc (%)": "Test accuracy over all test sizes. Higher is better.",
    "acc, trained BN stats (%)": "Test accuracy with the BatchNorm statistics of training "
                                 "(the column before re-estimates them per test size).",
    "scale consist. (%)": "Scale consistency: the share of test images whose predicted class is "
                          "the same at every size of the protocol's grid. Higher is better.",
    "equiv. err": "Equivariance error of the last spatial layer, ||D f(x) - f(D x)||² / "
                  "||D f(x)||², mean over target sizes. Lower is better; 0 is exact.",
    "logit inv. err": "The same error of the logits (invariance of the output). Lower is "
                      "better.",
    "train time (s)": "Training wall-clock time; compare runs of one device only.",
    "infer (img/s)": "Inference throughput on the test set.",
    "runs": "Runs of the row and how many failed (never averaged in).",
    "bold": "Not significantly worse than the best of its column (paired test, α = 0.05).",
}


def tied_mask(board: pd.DataFrame) -> pd.DataFrame:
    """True where a row is tied with the best of its column (bold), per metric column of
    :data:`significance.METRICS` (named by the board's mean column)."""
    return pd.DataFrame({m.column: [bool(v) is True for v in board.get(f"{m.name}_tied",
                                                                       [False] * len(board))]
                         for m in significance.METRICS}, index=board.index)


def mark_tied(board: pd.DataFrame, shown: pd.DataFrame, wrap: Callable[[str], str]) -> pd.DataFrame:
    """``shown`` (display strings of ``board``'s rows, in order) with each tied cell wrapped."""
    mask = tied_mask(board).reset_index(drop=True)
    out = shown.copy()
    for m, header in zip(significance.METRICS, METRIC_HEADERS):
        if header in out:
            out[header] = [wrap(s) if t else s for s, t in zip(out[header], mask[m.column])]
    return out


def _tests_used(board: pd.DataFrame) -> list[str]:
    used = {t for m in significance.METRICS for t in board.get(f"{m.name}_test", []) if t}
    return [t for t in significance.TESTS.values() if t in used]


def _interval_missing(board: pd.DataFrame) -> bool:
    """Whether some metric value of the board has no interval."""
    return any(np.isfinite(v) and not k for m in significance.METRICS
               for v, k in zip(board.get(m.column, pd.Series(dtype=float)).astype(float),
                               board.get(f"{m.name}_ci", pd.Series(dtype=str))))


def _untested(board: pd.DataFrame) -> bool:
    """Whether some row with a value could not be compared with its column's best."""
    for m in significance.METRICS:
        values = board.get(m.column, pd.Series(dtype=float)).astype(float)
        tied = board.get(f"{m.name}_tied", pd.Series(dtype=bool))
        tests = board.get(f"{m.name}_test", pd.Series(dtype=str))
        if any(np.isfinite(v) and not t and not s for v, t, s in zip(values, tied, tests)):
            return True
    return False


def significance_notes(board: pd.DataFrame) -> list[str]:
    """The notes under a leaderboard: its intervals, what bold means, which tests made it,
    and the rank column."""
    kinds = {k for m in significance.METRICS for k in board.get(f"{m.name}_ci", []) if k}
    alpha = f"α = {stats.ALPHA:g}"
    interval = ("Each metric: the mean over the finished runs and [its 95 % confidence "
                "interval]: Student t over seeds where a row has two or more finished runs")
    if "bootstrap" in kinds or "t" not in kinds:
        interval += (f"; with one, a percentile bootstrap over that run's test images "
                     f"({stats.RESAMPLES:,} resamples, seeded), which holds no seed-to-seed "
                     "variation")
    if _interval_missing(board):
        interval += ("; [—]: no interval (one run whose record holds no per-image outcomes; "
                     "the equivariance errors are not recorded per image)")
    interval += ". Bounds are clipped to the metric's range."
    used = _tests_used(board)
    bold = (f"Bold: not significantly worse than the best mean of its column (two-sided paired "
            f"test, {alpha}, each comparison on its own, not corrected for multiple "
            "comparisons): ")
    bold += ("; ".join(used) if used else "no comparison could be tested here") + "."
    if _untested(board):
        bold += (" A row that no test can compare with the best (one seed without per-image "
                 "outcomes, or no seed in common) is not bold.")
    rank = ("Rank (test accuracy): from 1 + the number of rows significantly more accurate to "
            "the number of rows minus those significantly less accurate, every pair compared "
            "as for bold (a pair no test can compare counts as not separated); — where no test "
            "compares the row with any other.")
    return [interval, bold, rank]


def rank_summary_table(board: pd.DataFrame, sections: Iterable[tuple[Any, pd.DataFrame]]
                       ) -> tuple[pd.DataFrame, str] | None:
    """The average-rank summary over the board's comparisons as display strings, and the line
    that says what it shows; None with fewer than two comparisons or two common methods."""
    sections = list(sections)
    found = significance.rank_summary(board, sections)
    if found is None:
        return None
    frame, res = found
    left_out = sorted(set(board.method) - set(frame.method))
    line = (f"Average rank of test accuracy over {res.n} comparisons (1 the best; Demšar 2006): "
            f"Friedman χ²_F = {res.chi2:.2f} ({res.k - 1} df), p = {res.p_chi2:.3g}; "
            f"Iman–Davenport F_F = {res.f:.2f}, p = {res.p_f:.3g}. Nemenyi critical "
            f"difference (α = {res.alpha:g}): {res.cd:.2f}; methods whose average ranks differ "
            "by less are not significantly different.")
    if left_out:
        line += f" Not in every comparison, so left out: {', '.join(left_out)}."
    shown = pd.DataFrame({"method": frame.method,
                          "average rank": [f"{r:.2f}" for r in frame.average_rank],
                          "within CD of the best": ["yes" if w else "no"
                                                    for w in frame.within_cd]})
    return shown, line


def rank_summary_text(board: pd.DataFrame, sections: Iterable[tuple[Any, pd.DataFrame]]) -> str:
    """:func:`rank_summary_table` as Markdown ("" when there is none)."""
    found = rank_summary_table(board, sections)
    if found is None:
        return ""
    shown, line = found
    return line + "\n\n" + shown.to_markdown(index=False, disable_numparse=True)
