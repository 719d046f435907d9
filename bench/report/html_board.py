"""The leaderboard part of the report page: tables with a tooltip on every column header,
each method's colour and marker beside its name, intervals under their means, the glossary
beside the tables and the average-rank summary.

The markers are drawn as inline SVG from matplotlib's own marker paths, so the key beside
a method's name is the very shape its figures use. Each key carries its style as data
(``data-color``, ``data-marker``, ``data-fill``) for tests and other readers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd
from matplotlib.markers import MarkerStyle
from matplotlib.path import Path as MplPath

from scaleqbench.bench.formatting import MISSING
from scaleqbench.bench.report.board_text import (
    GLOSSARY,
    METRIC_HEADERS,
    rank_summary_table,
    tied_mask,
)
from scaleqbench.bench.report.data import input_labels
from scaleqbench.bench.report.plots import Palette, Style
from scaleqbench.bench.report.significance import METRICS
from scaleqbench.bench.report.tables import display_table

__all__ = ["glossary_html", "key_html", "leaderboard_html", "marker_svg", "rank_summary_html",
           "table_html"]

#: column header -> its tooltip beyond the glossary's entries (published columns)
EXTRA_TIPS = {
    "published acc (%)": "The accuracy the method's paper reports for this protocol.",
    "Δ acc (pp)": "Ours minus published, in percentage points.",
    "published eq. err": "The equivariance error the paper reports for this protocol.",
    "Δ eq. err": "Ours minus published.",
    "average rank": "The method's rank of test accuracy (1 the best), averaged over the "
                    "comparisons.",
    "within CD of the best": "Whether its average rank is within the Nemenyi critical "
                             "difference of the best one: not significantly worse.",
}


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _svg_path(marker: str) -> str:
    """The SVG path data of matplotlib marker ``marker`` (unit size, y pointing down)."""
    style = MarkerStyle(marker)
    path = style.get_path().transformed(style.get_transform())
    out = []
    for points, code in path.iter_segments(simplify=False, curves=True):
        pts = [f"{x:.3f} {-y:.3f}" for x, y in zip(points[::2], points[1::2])]
        if code == MplPath.MOVETO:
            out.append("M" + pts[0])
        elif code == MplPath.LINETO:
            out.append("L" + pts[0])
        elif code == MplPath.CURVE3:
            out.append("Q" + " ".join(pts))
        elif code == MplPath.CURVE4:
            out.append("C" + " ".join(pts))
        elif code == MplPath.CLOSEPOLY:
            out.append("Z")
    return "".join(out)


def marker_svg(style: Style, size: int = 14) -> str:
    """A method's marker in its colour as inline SVG (hollow for a variant)."""
    fill = "#ffffff" if style.hollow else style.color
    return (f'<svg width="{size}" height="{size}" viewBox="-0.8 -0.8 1.6 1.6" aria-hidden="true">'
            f'<path d="{_svg_path(style.marker)}" fill="{fill}" stroke="{style.color}" '
            'stroke-width="0.12" stroke-linejoin="round"/></svg>')


def key_html(label: str, palette: Palette) -> str:
    """The key of method ``label`` (its marker in its colour), with its style as data."""
    st = palette.style(label)
    return (f'<span class="key" data-method="{_e(label)}" data-color="{_e(st.color)}" '
            f'data-marker="{_e(st.marker)}" data-fill="{"none" if st.hollow else "full"}" '
            f'title="how the figures draw {_e(label)}">{marker_svg(st)}</span>')


def _tip(column: str) -> str:
    return GLOSSARY.get(column) or EXTRA_TIPS.get(column, "")


def table_html(columns: list[str], rows: list[list[tuple[str, str]]], box: str = "scroll") -> str:
    """A table of ``rows`` of (html, css class) cells inside a box of class ``box`` that
    scrolls (a wide table scrolls in its box instead of widening the page); each header
    with its glossary entry as a tooltip where it has one."""
    head = "".join(f'<th title="{_e(_tip(c))}">{_e(c)}</th>' if _tip(c) else f"<th>{_e(c)}</th>"
                   for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>"
                                    for cell, cls in row) + "</tr>" for row in rows)
    return (f'<div class="{box}"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def _interval_cell(text: str) -> str:
    """``92.20 [91.05, 93.35]`` as the mean with its interval on a small line under it."""
    m = re.fullmatch(r"(\S+) (\[.*\])", text)
    if not m:
        return _e(text)
    return f'{_e(m.group(1))}<span class="ci">{_e(m.group(2))}</span>'


def leaderboard_html(board: pd.DataFrame, palette: Palette) -> str:
    """One section's leaderboard: keys beside the methods, intervals under the means, the
    rows tied with the best of a column in bold."""
    shown = display_table(board)
    tied = tied_mask(board).reset_index(drop=True)
    headers = {h: m.column for h, m in zip(METRIC_HEADERS, METRICS)}
    labels = list(input_labels(board).method)
    rows = []
    for i, row in shown.iterrows():
        cells = []
        for c, v in row.items():
            if c == "method":
                # a long variant (fourier[impl=reference]) may break before its options
                cells.append((key_html(labels[i], palette) + _e(v).replace("[", "<wbr>["),
                              "method"))
            elif c in headers:
                cells.append((_interval_cell(v), "tied" if tied.at[i, headers[c]] else ""))
            elif c == "runs":
                # "3 runs," and "0 failed" each kept on one line
                text = _e(v).replace(" run", "&nbsp;run").replace(" failed", "&nbsp;failed")
                cells.append((text, "count" + ("" if v.endswith(" 0 failed") else " failed")))
            else:
                cells.append((_e(v), ""))
        rows.append(cells)
    return table_html(list(shown.columns), rows)


def glossary_html(columns: Iterable[str]) -> str:
    """The glossary of the tables' ``columns`` (in their order), and of bold and the
    brackets."""
    terms = [c for c in dict.fromkeys(columns) if c in GLOSSARY]
    items = "".join(f"<dt>{_e(t)}</dt><dd>{_e(GLOSSARY[t])}</dd>" for t in terms)
    items += ("<dt>[a, b]</dt><dd>The 95 % confidence interval of the mean (see the notes "
              "under the tables); [—]: none.</dd>"
              f"<dt><b>bold</b></dt><dd>{_e(GLOSSARY['bold'])}</dd>"
              f"<dt>{MISSING}</dt><dd>No value (not measured, or no test possible).</dd>")
    return f'<aside class="glossary" id="glossary"><h3>Glossary</h3><dl>{items}</dl></aside>'


def rank_summary_html(board: pd.DataFrame, sections: Iterable[tuple[Any, pd.DataFrame]],
                      palette: Palette) -> str:
    """The average-rank summary over the sections ("" with fewer than two)."""
    found = rank_summary_table(board, sections)
    if found is None:
        return ""
    shown, line = found
    rows = [[(key_html(m, palette) + _e(m), "method"), (_e(r), ""),
             (_e(w), "tied" if w == "yes" else "")]
            for m, r, w in shown.itertuples(index=False)]
    return (f'<h3 id="average-ranks">Average ranks over the comparisons</h3>'
            f'<p class="note">{_e(line)}</p>' + table_html(list(shown.columns), rows))
