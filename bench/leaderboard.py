"""Collate run records into a pandas DataFrame and a leaderboard (printed, Markdown, CSV).

One row per (dataset, preset, method): parameter count, test accuracy as
mean ± std over seeds, scale consistency, equivariance error (headline and the
logits' invariance error), training time; sorted by accuracy within a dataset.
Failed runs are counted, never averaged in.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from scalebench.bench.errors import NoRecordsError
from scalebench.bench.records import atomic_write_text, load_records

__all__ = ["collate", "format_leaderboard", "records_frame", "summarize", "write_leaderboard"]

RUN_COLUMNS = ["experiment", "dataset", "source", "preset", "method", "seed", "status",
               "params", "epochs", "test_acc", "val_acc", "scale_consistency", "eq_err",
               "logit_inv_err", "train_time_s", "train_img_per_s", "infer_img_per_s",
               "peak_mem_mb", "device", "run_id", "error"]


def records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run record, with the flat columns above (missing values as NaN)."""
    rows = [{c: rec.get(c) for c in RUN_COLUMNS} for rec in records]
    df = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for c in ("test_acc", "val_acc", "scale_consistency", "eq_err", "logit_inv_err",
              "train_time_s", "train_img_per_s", "infer_img_per_s", "peak_mem_mb"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def collate(folders: list[str | Path]) -> pd.DataFrame:
    """Records of any number of experiment folders as one DataFrame."""
    records = []
    for folder in folders:
        found = load_records(Path(folder))
        if not found:
            raise NoRecordsError(f"no run records under {folder} (expected {folder}/runs/*.json); "
                                 "run `bench run --out` there first")
        records.extend(found)
    return records_frame(records)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard DataFrame: one row per (dataset, preset, method)."""
    rows = []
    for (dataset, preset, method), g in df.groupby(["dataset", "preset", "method"], sort=False):
        ok = g[g.status == "ok"]
        rows.append({
            "dataset": dataset, "preset": preset, "method": method,
            "runs": len(g), "failed": int((g.status != "ok").sum()),
            "params": int(ok.params.dropna().iloc[0]) if ok.params.notna().any() else None,
            "test_acc_mean": ok.test_acc.mean(), "test_acc_std": ok.test_acc.std(ddof=1),
            "scale_consistency": ok.scale_consistency.mean(), "eq_err": ok.eq_err.mean(),
            "logit_inv_err": ok.logit_inv_err.mean(), "train_time_s": ok.train_time_s.mean(),
            "infer_img_per_s": ok.infer_img_per_s.mean(),
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out.sort_values(["dataset", "preset", "test_acc_mean"],
                           ascending=[True, True, False], na_position="last").reset_index(drop=True)


def _pct(mean: float, std: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "—"
    if std is None or not math.isfinite(std):
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _num(x, fmt: str) -> str:
    return "—" if x is None or not math.isfinite(float(x)) else format(float(x), fmt)


def display_frame(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard with formatted strings, as shown in the terminal and Markdown."""
    return pd.DataFrame({
        "dataset": board.dataset, "preset": board.preset, "method": board.method,
        "params": [_num(p, ",.0f") if p is not None else "—" for p in board.params],
        "test acc (%)": [_pct(m, s) for m, s in zip(board.test_acc_mean, board.test_acc_std)],
        "scale consist. (%)": [_num(100 * v, ".2f") if v == v else "—"
                               for v in board.scale_consistency],
        "equiv. err": [_num(v, ".2e") for v in board.eq_err],
        "logit inv. err": [_num(v, ".2e") for v in board.logit_inv_err],
        "train time (s)": [_num(v, ".1f") for v in board.train_time_s],
        "runs (failed)": [f"{r} ({f})" if f else str(r) for r, f in zip(board.runs, board.failed)],
    })


def format_leaderboard(board: pd.DataFrame) -> str:
    if board.empty:
        return "(no runs)"
    return display_frame(board).to_markdown(index=False, disable_numparse=True)


def write_leaderboard(board: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """``leaderboard.md`` (formatted) and ``leaderboard.csv`` (raw numbers), atomically."""
    md, csv = Path(out_dir) / "leaderboard.md", Path(out_dir) / "leaderboard.csv"
    atomic_write_text(md, "# Leaderboard\n\n" + format_leaderboard(board) + "\n")
    atomic_write_text(csv, board.to_csv(index=False))
    return md, csv
