"""Helpers for the leaderboard tests: ``bench`` run in this process, the leaderboard table it
prints, its cells, and the bounds of a Student t interval."""

from __future__ import annotations

import re

import numpy as np
from scipy import stats as sp

from scaleqbench.bench.cli import main as cli


TINY = ["--limit-train", "120", "--limit-eval", "60", "--epochs", "1", "--quiet", "--no-report"]


def run_cli(*argv: str) -> int:
    return cli.main([str(a) for a in argv])


def table(text: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in ``text``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[start:end]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in rows[2:]]


def cell(text: str) -> tuple[float, float | None, float | None]:
    """``"**92.20 [91.05, 93.35]**"`` -> (92.2, 91.05, 93.35); ``"92.20 [—]"`` -> (92.2, None,
    None)."""
    m = re.fullmatch(r"(?:\*\*)?(\S+) \[(.*)\](?:\*\*)?", text)
    assert m, text
    if m.group(2) == "—":
        return float(m.group(1)), None, None
    lo, hi = (float(v) for v in m.group(2).split(","))
    return float(m.group(1)), lo, hi


def t_bounds(values: list[float], scale: float = 100.0, top: float = 1.0) -> tuple[float, float]:
    """The 95 % Student t interval of the mean, by scipy, clipped to the range [0, top]."""
    lo, hi = sp.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sp.sem(values))
    return scale * max(lo, 0.0), scale * min(hi, top)
