"""Collate run records into a pandas DataFrame and a leaderboard (printed, Markdown, CSV).

One row per leaderboard key (:func:`bench.record.protocol_key`: every field of
the protocol, and the method with its options; seeds aggregated): parameter
count, test accuracy as mean ± std over seeds, scale consistency, equivariance
error (headline and the logits' invariance error), training time; sorted by
protocol, then by accuracy. Failed runs are counted, never averaged in. The
table shows dataset, preset and method, plus every other protocol field in
which its rows differ (source, epochs, limits...), so no two rows look alike.

The input policy (``input``) is a key field that tells rows of one comparison
apart instead of making a comparison of its own (:func:`comparison`): under the
published handling ``fourier`` sees native sizes and the baselines padded
images, and they are ranked in one table, the ``input`` column saying which is
which. A run recalibrated per size (native input, BatchNorm; ``bench.precise_bn``)
is judged on its recalibrated accuracy and scale consistency; the plain accuracy
is shown beside it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from scaleqbench.bench.formatting import mean_std, num
from scaleqbench.bench.store.record import NUMERIC_COLUMNS, RUN_COLUMNS, RunRecord, protocol_key
from scaleqbench.bench.store.atomic_io import atomic_write_text
from scaleqbench.bench.spec import PROTOCOL_FIELDS, Protocol

__all__ = ["BOARD_METRICS", "PROTOCOL_ORDER", "ROW_FIELDS", "comparison", "display_frame",
           "format_leaderboard", "protocol_header", "protocol_order", "protocol_value",
           "records_frame", "shown_row_fields", "summarize", "varying_fields",
           "write_leaderboard"]

# the order docs/protocols.md lists the protocols in; anything else follows alphabetically
PROTOCOL_ORDER = ["mnist-res", "mnist-res-train28", "mnist-res-train20-28", "mnist-scale",
                  "mnist-scale+", "stl10", "stl10-res", "stl10-res-train97",
                  "stl10-res-train69-97"]
#: the protocol fields every leaderboard shows, whether or not its rows differ in them
ALWAYS_SHOWN = ("dataset", "preset")
#: protocol fields that tell rows of one comparison apart (shown as a column whenever a value
#: is not the default) rather than making comparisons (report sections) of their own
ROW_FIELDS = ("input",)
_DEFAULT = Protocol()
#: the numbers of a leaderboard row, after its key and run counts
BOARD_METRICS = ["params", "test_acc_mean", "test_acc_std", "scale_consistency", "eq_err",
                 "logit_inv_err", "train_time_s", "infer_img_per_s", "test_acc_plain_mean",
                 "scale_consistency_plain"]


def comparison(protocol: Protocol) -> Protocol:
    """The comparison (report section, ranking group) ``protocol`` belongs to: the protocol
    with its :data:`ROW_FIELDS` at their defaults."""
    return dataclasses.replace(protocol, **{f: getattr(_DEFAULT, f) for f in ROW_FIELDS})


def records_frame(records: list[RunRecord]) -> pd.DataFrame:
    """One row per record: :data:`~bench.record.RUN_COLUMNS`, every protocol field (read
    through :func:`~bench.record.protocol_key`) and the ``protocol`` itself."""
    extra = [f for f in PROTOCOL_FIELDS if f not in RUN_COLUMNS]
    rows = []
    for rec in records:
        key = protocol_key(rec)
        row: dict[str, Any] = {c: getattr(rec, c) for c in RUN_COLUMNS}
        row.update(dataclasses.asdict(key.protocol), method=key.method, protocol=key.protocol)
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *extra, "protocol"])
    for c in NUMERIC_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def protocol_order(protocol: Protocol) -> tuple:
    """Sections and rows in :data:`PROTOCOL_ORDER`, then by each field (unset first)."""
    rank = (PROTOCOL_ORDER.index(protocol.dataset) if protocol.dataset in PROTOCOL_ORDER
            else len(PROTOCOL_ORDER))
    values = (getattr(protocol, f) for f in PROTOCOL_FIELDS)
    return (rank, *((v is not None, v if v is not None else 0) for v in values))


def _accuracy_order(acc: float) -> tuple:
    return (0, -acc) if acc is not None and math.isfinite(acc) else (1, 0.0)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard DataFrame: one row per leaderboard key (protocol and method)."""
    rows = []
    for (protocol, method), g in df.groupby(["protocol", "method"], sort=False):
        ok = g[g.status == "ok"]
        # judged on per-size BatchNorm statistics where the run has them (bench.precise_bn)
        acc = ok.test_acc_recal.where(ok.test_acc_recal.notna(), ok.test_acc)
        consistency = ok.scale_consistency_recal.where(ok.scale_consistency_recal.notna(),
                                                       ok.scale_consistency)
        recal = bool(ok.test_acc_recal.notna().any())
        rows.append({
            **dataclasses.asdict(protocol), "method": method, "protocol": protocol,
            "runs": len(g), "failed": int((g.status != "ok").sum()),
            "params": int(ok.params.dropna().iloc[0]) if ok.params.notna().any() else None,
            "test_acc_mean": acc.mean(), "test_acc_std": acc.std(ddof=1),
            "scale_consistency": consistency.mean(), "eq_err": ok.eq_err.mean(),
            "logit_inv_err": ok.logit_inv_err.mean(), "train_time_s": ok.train_time_s.mean(),
            "infer_img_per_s": ok.infer_img_per_s.mean(),
            "test_acc_plain_mean": ok.test_acc.mean() if recal else math.nan,
            "scale_consistency_plain": ok.scale_consistency.mean() if recal else math.nan,
        })
    # one ranking per comparison: a padded baseline and a native fourier side by side
    rows.sort(key=lambda r: (protocol_order(comparison(r["protocol"])),
                             _accuracy_order(r["test_acc_mean"]), protocol_order(r["protocol"])))
    columns = [*PROTOCOL_FIELDS, "method", "protocol", "runs", "failed", *BOARD_METRICS]
    # object columns: an unset protocol field stays None (not NaN) in the CSV and the key
    return pd.DataFrame(rows, columns=columns, dtype=object).astype(
        {c: float for c in BOARD_METRICS if c != "params"})


def varying_fields(protocols: Iterable[Protocol]) -> list[str]:
    """The protocol fields in which ``protocols`` differ."""
    protocols = list(protocols)
    return [f for f in PROTOCOL_FIELDS if len({getattr(p, f) for p in protocols}) > 1]


def protocol_header(name: str) -> str:
    return name.replace("_", " ")


def protocol_value(name: str, value: Any) -> str:
    """A protocol field as shown: an unset one (None) is the recipe's or dataset's default."""
    return "default" if value is None else str(value)


def shown_row_fields(protocols: Iterable[Protocol]) -> list[str]:
    """The :data:`ROW_FIELDS` a table of ``protocols`` shows: those that differ between its
    rows or are not at their default in one (padded runs say so even when all are)."""
    protocols = list(protocols)
    varying = varying_fields(protocols)
    return [f for f in ROW_FIELDS if f in varying
            or any(getattr(p, f) != getattr(_DEFAULT, f) for p in protocols)]


def display_frame(board: pd.DataFrame, protocol: Iterable[str] | None = None) -> pd.DataFrame:
    """The leaderboard with formatted strings, as shown in the terminal and Markdown.

    ``protocol``: the protocol fields to show (default: dataset, preset, every field in
    which the rows differ, and the row fields of :func:`shown_row_fields`). A column of
    the plain accuracy is added when a row was judged on recalibrated BatchNorm statistics.
    """
    if protocol is None:
        varying = varying_fields(board.protocol)
        rows = shown_row_fields(board.protocol)
        protocol = [f for f in PROTOCOL_FIELDS if f in ALWAYS_SHOWN or f in varying or f in rows]
    shown = {protocol_header(f): [protocol_value(f, getattr(p, f)) for p in board.protocol]
             for f in protocol}
    plain = {}
    if "test_acc_plain_mean" in board and board.test_acc_plain_mean.notna().any():
        plain["acc, trained BN stats (%)"] = [num(v, ".2f", 100)
                                              for v in board.test_acc_plain_mean]
    return pd.DataFrame({
        **shown, "method": list(board.method),
        "params": [num(p, ",.0f") for p in board.params],
        "test acc (%)": [mean_std(m, s, ".2f", 100) for m, s in
                         zip(board.test_acc_mean, board.test_acc_std)],
        **plain,
        "scale consist. (%)": [num(v, ".2f", 100) for v in board.scale_consistency],
        "equiv. err": [num(v, ".2e") for v in board.eq_err],
        "logit inv. err": [num(v, ".2e") for v in board.logit_inv_err],
        "train time (s)": [num(v, ".1f") for v in board.train_time_s],
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
    atomic_write_text(csv, board.drop(columns=["protocol"]).to_csv(index=False))
    return md, csv
