"""How numbers are shown in leaderboards, report tables and the report page: one function a format.

A value that is missing (None, NaN, inf, or not a number at all) shows as an
em dash, everywhere the same.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MISSING", "finite", "mean_std", "num", "signed", "with_interval"]

MISSING = "—"


def finite(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing, not a number, NaN or infinite."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def num(x: Any, fmt: str, scale: float = 1.0) -> str:
    """``scale * x`` formatted with ``fmt`` (e.g. ``".2f"``, ``",.0f"``, ``".2e"``)."""
    f = finite(x)
    return MISSING if f is None else format(scale * f, fmt)


def signed(x: Any, fmt: str, scale: float = 1.0) -> str:
    """Like :func:`num`, with an explicit sign (a delta)."""
    f = finite(x)
    return MISSING if f is None else format(scale * f, "+" + fmt)


def mean_std(mean: Any, std: Any, fmt: str = ".2f", scale: float = 1.0) -> str:
    """``"mean ± std"``, the mean alone when there is no std (one seed)."""
    if finite(mean) is None:
        return MISSING
    if finite(std) is None:
        return num(mean, fmt, scale)
    return f"{num(mean, fmt, scale)} ± {num(std, fmt, scale)}"


def with_interval(x: Any, interval: Any, fmt: str, unit: str = "") -> str:
    """``x`` as ``fmt`` followed by ``unit``, then `` [lo–hi]`` where ``interval`` is a pair
    (a median's interval over rounds: ``0.405 [0.401–0.415]``); :data:`MISSING` without ``x``."""
    if finite(x) is None:
        return MISSING
    shown = num(x, fmt) + unit
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        shown += f" [{num(interval[0], fmt)}–{num(interval[1], fmt)}]"
    return shown
