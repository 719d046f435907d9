"""Collate run records into a pandas DataFrame and a leaderboard (printed, Markdown, CSV).

One row per leaderboard key (:func:`bench.record.protocol_key`: every field of
the protocol, and the method with its options; seeds aggregated): parameter
count, test accuracy, scale consistency, equivariance error (headline and the
logits' invariance error), each as its mean and 95 % interval, training time;
sorted by protocol, then by accuracy. Within each comparison the rows that no
paired test tells from the best of a column are marked (bold), and each row
gets the range of ranks the tests allow (:mod:`bench.report.significance`).
Failed runs are counted, never averaged in. The table shows dataset, preset and
method, plus every other protocol field in which its rows differ (source,
epochs, limits...), so no two rows look alike.

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

from scaleqbench.bench.formatting import MISSING, finite, num
from scaleqbench.bench.report import significance
from scaleqbench.bench.report.board_text import (
    METRIC_HEADERS,
    mark_tied,
    rank_summary_text,
    significance_notes,
)
from scaleqbench.bench.stats import rank_label
from scaleqbench.bench.store.record import NUMERIC_COLUMNS, RUN_COLUMNS, RunRecord, protocol_key
from scaleqbench.bench.store.atomic_io import atomic_write_text
from scaleqbench.bench.spec import PROTOCOL_FIELDS, Protocol

__all__ = ["BOARD_METRICS", "PROTOCOL_ORDER", "ROW_FIELDS", "STAT_COLUMNS", "comparison",
           "display_frame", "format_leaderboard", "interval_text", "protocol_header",
           "protocol_order", "protocol_value", "records_frame", "runs_text",
           "sections_of", "shown_row_fields", "summarize", "varying_fields",
           "write_leaderboard"]

# the order docs/protocols.md lists the protocols in; anything else follows alphabetically
PROTOCOL_ORDER = ["mnist-res", "mnist-res-train28", "mnist-res-train20-28", "mnist-scale",
                  "mnist-scale+", "stl10", "stl10-res", "stl10-res-pooled", "stl10-res-train97",
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
#: per metric of :data:`significance.METRICS`: the interval's bounds and the seeds' std, how it
#: was made (``t``, ``bootstrap`` or empty), the p-value of the comparison with the best of
#: the column and its test, and whether no test finds the row worse than the best (bold)
STAT_COLUMNS = ["n_seeds", "rank_lo", "rank_hi", *(
    f"{m.name}_{part}" for m in significance.METRICS
    for part in ("lo", "hi", "std", "ci", "p", "test", "tied")
    if f"{m.name}_{part}" not in BOARD_METRICS)]


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
        row.update(dataclasses.asdict(key.protocol), method=key.method, protocol=key.protocol,
                   per_image=rec.per_image)
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *extra, "protocol", "per_image"])
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


def _row(protocol: Protocol, method: str, g: pd.DataFrame) -> dict[str, Any]:
    """One leaderboard row from the runs ``g`` of one key: counts, means, intervals, and the
    per-metric samples (``_samples``) the comparisons of its section read."""
    ok = g[g.status == "ok"]
    # judged on per-size BatchNorm statistics where the run has them (bench.precise_bn)
    acc = ok.test_acc_recal.where(ok.test_acc_recal.notna(), ok.test_acc)
    consistency = ok.scale_consistency_recal.where(ok.scale_consistency_recal.notna(),
                                                   ok.scale_consistency)
    recal = bool(ok.test_acc_recal.notna().any())
    samples = significance.samples(ok)
    row = {
        **dataclasses.asdict(protocol), "method": method, "protocol": protocol,
        "runs": len(g), "failed": int((g.status != "ok").sum()),
        "params": int(ok.params.dropna().iloc[0]) if ok.params.notna().any() else None,
        "test_acc_mean": acc.mean(), "test_acc_std": acc.std(ddof=1),
        "scale_consistency": consistency.mean(), "eq_err": ok.eq_err.mean(),
        "logit_inv_err": ok.logit_inv_err.mean(), "train_time_s": ok.train_time_s.mean(),
        "infer_img_per_s": ok.infer_img_per_s.mean(),
        "test_acc_plain_mean": ok.test_acc.mean() if recal else math.nan,
        "scale_consistency_plain": ok.scale_consistency.mean() if recal else math.nan,
        "n_seeds": int(ok.seed.nunique()), "_samples": samples,
    }
    for metric in significance.METRICS:
        row.update(significance.row_intervals(samples[metric.name], metric))
    return row


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard DataFrame: one row per leaderboard key (protocol and method), with the
    interval of every metric and the comparisons of :mod:`bench.report.significance` made
    within each comparison (:func:`comparison`)."""
    # a row never mixes device kinds: CPU and GPU times are not averaged together
    rows = [{**_row(protocol, method, g), "device_kind": kind}
            for (protocol, method, kind), g in df.assign(device_kind=_device_kinds(df))
            .groupby(["protocol", "method", "device_kind"], sort=False)]
    by_comparison: dict[Protocol, list[dict[str, Any]]] = {}
    for row in rows:
        by_comparison.setdefault(comparison(row["protocol"]), []).append(row)
    for members in by_comparison.values():
        significance.judge_section(members)
    # one ranking per comparison: a padded baseline and a native fourier side by side
    rows.sort(key=lambda r: (protocol_order(comparison(r["protocol"])),
                             _accuracy_order(r["test_acc_mean"]), protocol_order(r["protocol"])))
    columns = [*PROTOCOL_FIELDS, "method", "device_kind", "protocol", "runs", "failed",
               *BOARD_METRICS, *STAT_COLUMNS]
    # object columns: an unset protocol field stays None (not NaN) in the CSV and the key
    floats = [c for c in [*BOARD_METRICS, *STAT_COLUMNS] if c != "params" and
              not c.endswith(("_ci", "_test", "_tied")) and c != "n_seeds"]
    return pd.DataFrame(rows, columns=columns, dtype=object).astype({c: float for c in floats})


def _device_kinds(df: pd.DataFrame) -> pd.Series:
    """Each run's device kind (``cpu``/``cuda``): recorded, else read from its device's name
    (older records); a run that never reached a device (a job its launcher settled) takes
    the kind of its key's other runs (the CPU when none has one)."""
    named = df.device.map(lambda d: None if not isinstance(d, str)
                          else "cpu" if d.startswith("cpu") else "cuda")
    kind = df.device_kind.where(df.device_kind.notna(), named)
    known = {}
    for (protocol, method), k in zip(zip(df.protocol, df.method), kind):
        if isinstance(k, str):
            known.setdefault((protocol, method), k)
    fill = [known.get(key, "cpu") for key in zip(df.protocol, df.method)]
    return kind.where(kind.notna(), pd.Series(fill, index=df.index))


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


#: the formats of each metric of :data:`significance.METRICS` (of the mean and of the
#: interval's bounds) and its scale
METRIC_FORMATS = {"test_acc": (".2f", ".2f", 100.0), "scale_consistency": (".2f", ".2f", 100.0),
                  "eq_err": (".2e", ".1e", 1.0), "logit_inv_err": (".2e", ".1e", 1.0)}


def interval_text(mean: Any, lo: Any, hi: Any, fmt: str, bound_fmt: str,
                  scale: float = 1.0) -> str:
    """``"92.20 [91.05, 93.35]"``: a mean and its 95 % interval; ``"92.20 [—]"`` without an
    interval (one run and no per-image record), the em dash without a mean."""
    if finite(mean) is None:
        return MISSING
    if finite(lo) is None or finite(hi) is None:
        return f"{num(mean, fmt, scale)} [{MISSING}]"
    return f"{num(mean, fmt, scale)} [{num(lo, bound_fmt, scale)}, {num(hi, bound_fmt, scale)}]"


def runs_text(runs: int, failed: int) -> str:
    """``"3 runs, 0 failed"``."""
    return f"{runs} run{'' if runs == 1 else 's'}, {failed} failed"


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
    cells = {header: [interval_text(row[m.column], row[f"{m.name}_lo"], row[f"{m.name}_hi"],
                                    *METRIC_FORMATS[m.name]) for _, row in board.iterrows()]
             for m, header in zip(significance.METRICS, METRIC_HEADERS)}
    kinds = {} if "device_kind" not in board or board.device_kind.nunique() < 2 else \
        {"device": list(board.device_kind)}  # where rows of both kinds are shown
    return pd.DataFrame({
        **shown, "method": list(board.method), **kinds,
        "rank": [rank_label(lo, hi) for lo, hi in zip(board.rank_lo, board.rank_hi)],
        "params": [num(p, ",.0f") for p in board.params],
        METRIC_HEADERS[0]: cells[METRIC_HEADERS[0]],
        **plain,
        **{h: cells[h] for h in METRIC_HEADERS[1:]},
        "train time (s)": [num(v, ".1f") for v in board.train_time_s],
        "runs": [runs_text(r, f) for r, f in zip(board.runs, board.failed)],
    })


def sections_of(board: pd.DataFrame) -> list[tuple[Protocol, pd.DataFrame]]:
    """The board's comparisons (:func:`comparison`) and their rows, in the board's order."""
    keys = [comparison(p) for p in board.protocol]
    return [(k, board[[c == k for c in keys]]) for k in dict.fromkeys(keys)]


def format_leaderboard(board: pd.DataFrame) -> str:
    """The leaderboard as Markdown: the table (ties with the best in bold), the average-rank
    summary where it holds several comparisons, and the notes on intervals and tests."""
    if board.empty:
        return "(no runs)"
    shown = mark_tied(board, display_frame(board), lambda s: f"**{s}**")
    parts = [shown.to_markdown(index=False, disable_numparse=True), ""]
    summary = rank_summary_text(board, sections_of(board))
    if summary:
        parts += [summary, ""]
    parts += [f"- {note}" for note in significance_notes(board)]
    return "\n".join(parts)


def write_leaderboard(board: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """``leaderboard.md`` (formatted) and ``leaderboard.csv`` (raw numbers), atomically."""
    md, csv = Path(out_dir) / "leaderboard.md", Path(out_dir) / "leaderboard.csv"
    atomic_write_text(md, "# Leaderboard\n\n" + format_leaderboard(board) + "\n")
    atomic_write_text(csv, board.drop(columns=["protocol"]).to_csv(index=False))
    return md, csv
