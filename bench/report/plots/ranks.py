"""The critical-difference diagram of a report with several comparisons (Demšar 2006, fig. 1):
each method at its average rank on one axis, the Nemenyi critical difference as a bar, and a
thick line joining the methods that it does not separate."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from scaleqbench.bench.report.plots import kit
from scaleqbench.bench.report.plots.kit import Palette

__all__ = ["cd_diagram", "cliques"]


def cliques(ranks: list[float], cd: float) -> list[tuple[int, int]]:
    """The maximal runs ``(first, last)`` of methods (sorted by average rank) whose ranks all
    lie within ``cd`` of each other: the groups the Nemenyi test does not separate (groups of
    one left out)."""
    out: list[tuple[int, int]] = []
    for i in range(len(ranks)):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] - ranks[i] <= cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return out


def cd_diagram(frame: pd.DataFrame, cd: float, k: int, palette: Palette,
               title: str) -> Figure | None:
    """``frame`` (``method``, ``average_rank``, as :func:`bench.report.significance.rank_summary`
    gives it) drawn on a rank axis from 1 (the best, left) to ``k``; None without rows."""
    if frame.empty:
        return None
    frame = frame.sort_values("average_rank").reset_index(drop=True)
    n = len(frame)
    half = (n + 1) // 2
    fig, (ax,) = kit.figure(width=6.4)
    fig.set_size_inches(6.4, 1.6 + 0.28 * half)
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(half + 0.6), 1.6)
    ax.axis("off")
    ax.plot([1, k], [0, 0], color="#333333", linewidth=1)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.15], color="#333333", linewidth=1)
        ax.text(r, 0.3, str(r), ha="center", va="bottom", fontsize=8)
    ax.plot([1, 1 + cd], [1.1, 1.1], color="#333333", linewidth=2)
    ax.text(1 + cd / 2, 1.25, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for i, row in frame.iterrows():
        left = i < half
        y = -(i + 1) if left else -(n - i)
        end = 0.5 if left else k + 0.5
        st = palette.style(row.method)
        ax.plot([row.average_rank, row.average_rank, end], [0, y, y], color=st.color,
                linewidth=0.9)
        ax.plot([row.average_rank], [0], markersize=6, clip_on=False,
                **{**st.kw(), "linestyle": "none"})
        ax.text(end, y + 0.12, f"{row.method} ({row.average_rank:.2f})", fontsize=8,
                ha="left" if left else "right", va="bottom")
    for level, (a, b) in enumerate(cliques(list(frame.average_rank), cd)):
        y = -0.35 - 0.2 * level
        ax.plot([frame.average_rank[a] - 0.03, frame.average_rank[b] + 0.03], [y, y],
                color="#222222", linewidth=3, solid_capstyle="round")
    kit.title(fig, title)
    return fig
