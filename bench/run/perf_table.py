"""``bench perf``'s plain-text table: one line per row of :func:`~bench.run.perf.run_perf`,
then what the columns mean and how each method computed.

A median measured over rounds shows its interval in brackets (``0.408 [0.401–0.412]``):
two medians whose intervals overlap are not told apart.
"""

from __future__ import annotations

from typing import Any

from scaleqbench.bench.formatting import with_interval

__all__ = ["format_perf_table"]


def format_perf_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table, one line per row, plus each method's step time relative to the first
    (and, where measured, the work, its rate and the slowdown beside a busy neighbour); a
    median measured over rounds shows its interval in brackets."""
    allocs = any("allocator" in r for r in rows)
    busy = any("contention_ratio" in r for r in rows)
    header = (["method", "size", "batch", "params", "train_step_s", "GFLOP", "GFLOP/s",
               "infer_img/s", _memory_header(rows), "vs_first"]
              + (["busy_step_s", "vs_quiet", "vs_baseline"] if busy else [])
              + (["allocator", "vs_alloc"] if allocs else []))
    first: dict[int, float] = {}
    lines = []
    for r in rows:
        first.setdefault(r["size"], r["train_step_s"])
        rel = r["train_step_s"] / first[r["size"]] if first[r["size"]] else _NAN
        lines.append(_cells(r, rel, busy, allocs))
    widths = [max(len(h), *(len(ln[i]) for ln in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    out = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(ln) for ln in lines]
    return "\n".join(out + (_notes(rows, busy, allocs) if rows else []))


_NAN = float("nan")


def _with_interval(r: dict[str, Any], key: str, fmt: str, unit: str = "") -> str:
    """``r[key]`` with its ``[lo–hi]`` where the row has one."""
    return with_interval(r.get(key), r.get(f"{key}_interval"), fmt, unit)


def _cells(r: dict[str, Any], rel: float, busy: bool, allocs: bool) -> list[str]:
    """One row's cells, in :func:`format_perf_table`'s column order."""
    cells = [r["method"], str(r["size"]), str(r["batch"]), f"{r['params']:,}",
             _with_interval(r, "train_step_s", ".3f"), f"{r.get('gflop', _NAN):.4g}",
             f"{r.get('gflop_per_s', _NAN):.1f}", f"{r['infer_img_per_s']:.0f}",
             f"{r['peak_mem_mb']:.0f}", f"{rel:.2f}x"]
    if busy:
        cells += [f"{r.get('train_step_busy_s', _NAN):.3f}",
                  _with_interval(r, "contention_ratio", ".2f", "x"),
                  _with_interval(r, "contention_vs_baseline", ".2f", "x")]
    if allocs:
        cells += [str(r.get("allocator", "")), f"{r.get('alloc_ratio', _NAN):.3f}x"]
    return cells


def _notes(rows: list[dict[str, Any]], busy: bool, allocs: bool) -> list[str]:
    """The lines under the table: what the columns mean and how each method computed."""
    out = [f"device: {rows[0]['device']}; vs_first: train step time / that of the "
           "first method at the same size; GFLOP: counted per step (forward and "
           "backward, FFTs included)"]
    coverage = rows[0].get("interval_coverage")
    if coverage is not None:
        over = (f"{rows[0].get('rounds')} fresh processes" if allocs
                else f"{rows[0].get('timed_rounds')} rounds")
        out.append(f"[lo–hi]: the interval of the median over {over} between two order "
                   f"statistics ({100 * coverage:.1f}% coverage, any distribution); medians "
                   "whose intervals overlap are not told apart")
    described = {r["method"]: r["implementation"] for r in rows if "implementation" in r}
    out += [f"{name}: {how}" for name, how in described.items()]
    if busy:
        out.append(f"busy_step_s: the step beside a busy {rows[0].get('neighbour_threads')}"
                   "-thread neighbour process; vs_quiet: median over rounds of busy / "
                   "quiet step time; vs_baseline: median over rounds of vs_quiet / the "
                   "baseline's in the same round (below 1: slowed less than the baseline)")
        if rows[0].get("contention_baseline") is not None:
            out.append("baseline: a plain compute-bound loop (matrix products) on the same "
                       f"threads slowed {_with_interval(rows[0], 'contention_baseline', '.2f', 'x')}"
                       " beside the neighbour in the same rounds")
    if allocs:
        out.append(f"each row: median of {rows[0].get('rounds', 1)} fresh process(es); "
                   "vs_alloc: median over rounds of step time / that of the first "
                   "allocator in the same round")
    return out


def _memory_header(rows: list[dict[str, Any]]) -> str:
    """``peak_mem_mb`` named by what it measures (the rows' devices': one kind per table)."""
    kinds = sorted({r.get("peak_mem_def") for r in rows if r.get("peak_mem_def")})
    return f"peak_mem_mb ({' / '.join(kinds)})" if kinds else "peak_mem_mb"
