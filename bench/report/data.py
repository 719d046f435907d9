"""What a report is made of: records of several experiment folders, as DataFrames.

The per-run frame is :func:`bench.leaderboard.records_frame` plus the columns a
report needs beyond the leaderboard (base method name, folder, record path).
The long frames (accuracy per test size, equivariance error per layer and size,
training history) unpack the nested record fields the leaderboard ignores.
A report section is one comparison (:func:`bench.leaderboard.comparison`: every
leaderboard key field but the method and the input policy): only runs made the
same way are compared in a table, their input policies told apart by a column.
Published reference numbers come from ``scaleqbench.bench.published/published.csv`` (package data,
read by :mod:`bench.published.reference`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from scaleqbench.bench.errors import CorruptRecordError
from scaleqbench.bench.formatting import finite
from scaleqbench.bench.report.leaderboard import (
    PROTOCOL_ORDER,
    comparison,
    protocol_header,
    protocol_order,
    protocol_value,
    records_frame,
)
from scaleqbench.bench.published.reference import PUBLISHED_CSV, load_published
from scaleqbench.bench.store.record import RunRecord, protocol_key
from scaleqbench.bench.store.collection import Collection, load_folders
from scaleqbench.bench.spec import PROTOCOL_FIELDS, Protocol

__all__ = ["PROTOCOL_ORDER", "PUBLISHED_CSV", "Experiment", "ReportData", "eq_frame",
           "history_frame", "in_section", "input_labels", "load", "load_experiments",
           "load_published",
           "parse_scale_key", "per_size_frame", "runs_frame", "section_slug", "section_title",
           "sections"]

log = logging.getLogger(__name__)

#: the protocol fields every section title names; the others only when not at their default
TITLED = ("dataset", "source", "preset")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Protocol)}


@dataclass
class Experiment:
    """One experiment folder and the records found in it."""

    name: str
    folder: Path
    records: list[RunRecord] = field(default_factory=list)


@dataclass
class ReportData:
    """Everything the tables, plots and the page are drawn from."""

    experiments: list[Experiment]
    runs: pd.DataFrame
    published: pd.DataFrame
    perf: pd.DataFrame | None = None
    problems: list[CorruptRecordError] = field(default_factory=list)  # files left out
    notes: list[str] = field(default_factory=list)  # runs found in several folders

    @property
    def records(self) -> list[RunRecord]:
        return [r for e in self.experiments for r in e.records]


def load_experiments(collection: Collection) -> list[Experiment]:
    """One :class:`Experiment` per folder of ``collection`` (each run in one folder only)."""
    out = []
    for found in collection.folders:
        name = found.records[0].experiment if found.records else found.folder.name
        out.append(Experiment(name=name, folder=found.folder, records=found.records))
    return out


def runs_frame(experiments: list[Experiment]) -> pd.DataFrame:
    """One row per record: the leaderboard's run columns plus report-only columns."""
    records = [r for e in experiments for r in e.records]
    df = records_frame(records)
    df["method_name"] = [r.method_name for r in records]
    df["folder"] = [str(e.folder) for e in experiments for _ in e.records]
    df["record_path"] = [str(r.path) if r.path else None for r in records]
    return df


def sections(runs: pd.DataFrame) -> list[Protocol]:
    """The comparisons of the report (:func:`~bench.report.leaderboard.comparison`), in
    :func:`~bench.report.leaderboard.protocol_order`: one section each."""
    return sorted({comparison(p) for p in runs.protocol}, key=protocol_order)


def in_section(df: pd.DataFrame, protocol: Protocol) -> pd.DataFrame:
    """The rows of ``df`` (any frame with a ``protocol`` column) that belong to the section
    of comparison ``protocol``."""
    # a boolean Series, not a list: an empty list would select columns (none) instead of rows
    return df[pd.Series([comparison(p) == protocol for p in df.protocol], index=df.index,
                        dtype=bool)]


def _untitled(protocol: Protocol) -> list[tuple[str, Any]]:
    """The protocol fields a title names beyond :data:`TITLED`: those not at their default."""
    return [(f, getattr(protocol, f)) for f in PROTOCOL_FIELDS
            if f not in TITLED and getattr(protocol, f) != _DEFAULTS[f]]


def section_title(protocol: Protocol) -> str:
    extra = "".join(f", {protocol_header(f)} {protocol_value(f, v)}"
                    for f, v in _untitled(protocol))
    return f"{protocol.dataset} (source {protocol.source}, preset {protocol.preset}{extra})"


def section_slug(protocol: Protocol) -> str:
    """A file-name and anchor-safe name of a section (``mnist-res-embedded-quick-epochs1``)."""
    parts = [str(getattr(protocol, f)) for f in TITLED]
    parts += [f"{f.replace('_', '')}{v}" for f, v in _untitled(protocol)]
    text = "-".join(parts).replace("+", "plus")
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def input_labels(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (rows of one section) with the method label of a method that appears under
    several input policies extended by its policy, ``cnn[input=pad]``: one line each, in the
    method's colour (a variant's line style), never one mean over both."""
    if df.empty or "input" not in df:
        return df
    counts = df.groupby("method")["input"].nunique()
    several = set(counts[counts > 1].index)
    if not several:
        return df
    def label(method: str, policy: str) -> str:
        if method not in several:
            return method
        return f"{method[:-1]},input={policy}]" if method.endswith("]") else \
            f"{method}[input={policy}]"
    return df.assign(method=[label(m, p) for m, p in zip(df.method, df.input)])


def parse_scale_key(key: str) -> float:
    """A per-size key as a number: ``'28'`` -> 28, the scale bin ``'0.3-0.4'`` -> its middle."""
    key = str(key)
    if "-" in key.lstrip("-"):
        lo, hi = key.lstrip("-").split("-", 1)
        return (float(lo) + float(hi)) / 2
    return float(key)


def _is_bin(key: str) -> bool:
    return "-" in str(key).lstrip("-")


IDENT_COLUMNS = ["protocol", *PROTOCOL_FIELDS, "method", "seed"]


def _ident(r: RunRecord) -> dict[str, Any]:
    key = protocol_key(r)
    return {"protocol": key.protocol, **dataclasses.asdict(key.protocol), "method": key.method,
            "seed": r.seed}


def per_size_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Accuracy per test size (or scale bin) of every ok run, long format.

    The accuracy the leaderboard judges: with per-size BatchNorm statistics where the run
    has them (``recal``), else the plain one. ``trained`` says whether the training split
    held that size (the scale-generalisation protocols train on a few sizes only).
    """
    rows = []
    for r in records:
        if not r.ok:
            continue
        recal = bool(r.per_size_acc_recal)
        train_sizes = r.dataset_meta.get("train_sizes") if isinstance(r.dataset_meta, dict) \
            else None
        for key, acc in (r.per_size_acc_recal if recal else r.per_size_acc).items():
            acc = finite(acc)
            if acc is None:
                continue
            x = parse_scale_key(key)
            trained = (not train_sizes or _is_bin(key)
                       or any(float(t) == x for t in train_sizes))
            rows.append({**_ident(r), "key": str(key), "x": x, "binned": _is_bin(key),
                         "acc": acc, "recal": recal, "trained": trained})
    return pd.DataFrame(rows, columns=[*IDENT_COLUMNS, "key", "x", "binned", "acc", "recal",
                                       "trained"])


def _eq_rows(r: RunRecord, per_layer: dict) -> list[dict[str, Any]]:
    spatial = [k for k in per_layer if k != "logits" and per_layer[k]]
    rows = []
    for layer, per_size in per_layer.items():
        for size, err in (per_size or {}).items():
            err = finite(err)
            if err is None:
                continue
            is_logits = layer == "logits"
            rows.append({**_ident(r), "layer": layer,
                         "depth": 0 if is_logits else spatial.index(layer) + 1,
                         "n_layers": len(spatial), "is_logits": is_logits,
                         "is_headline": bool(spatial) and layer == spatial[-1],
                         "size": parse_scale_key(size), "err": err})
    return rows


_EQ_COLUMNS = [*IDENT_COLUMNS, "layer", "depth", "n_layers", "is_logits", "is_headline", "size",
               "err"]


def eq_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Equivariance error (operator ``ideal``) per layer and size of every ok run, long format.

    ``depth`` is the layer's position among the run's spatial layers (1 = first);
    ``logits`` gets depth 0 and ``is_logits`` so plots can treat it apart, and
    ``is_headline`` marks the last spatial layer (the one ``eq_err`` averages).
    """
    rows = [row for r in records if r.ok for row in _eq_rows(r, r.equivariance_error)]
    return pd.DataFrame(rows, columns=_EQ_COLUMNS)


def eq_ops_frame(records: list[RunRecord]) -> pd.DataFrame:
    """:func:`eq_frame` for every operator a run recorded (``ideal`` and those of
    ``equivariance_error_ops``), with an ``operator`` column."""
    rows = []
    for r in records:
        if not r.ok:
            continue
        for op, per_layer in {"ideal": r.equivariance_error,
                              **(r.equivariance_error_ops or {})}.items():
            rows.extend({**row, "operator": op} for row in _eq_rows(r, per_layer or {}))
    return pd.DataFrame(rows, columns=[*_EQ_COLUMNS, "operator"])


def history_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Per-epoch train loss / val accuracy of every run that recorded them (failed runs too:
    a curve that diverges is the most useful thing to see about a failed run)."""
    rows = []
    for r in records:
        for h in r.history:
            if not isinstance(h, dict) or h.get("epoch") is None:
                continue
            rows.append({**_ident(r), "status": r.status, "epoch": int(h["epoch"]),
                         "train_loss": finite(h.get("train_loss")),
                         "val_acc": finite(h.get("val_acc"))})
    cols = [*IDENT_COLUMNS, "status", "epoch", "train_loss", "val_acc"]
    return pd.DataFrame(rows, columns=cols)


def load_perf(path: Path | None) -> pd.DataFrame | None:
    """``bench perf``'s rows (``{"rows": [...], ...}`` or a bare list), or None without a
    readable perf file."""
    if path is None or not Path(path).is_file():
        return None
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s); the training-cost figure is left out", path, exc)
        return None
    rows = raw.get("rows") if isinstance(raw, dict) else raw
    df = pd.DataFrame([r for r in rows or [] if isinstance(r, dict)])
    need = {"method", "size"}
    if df.empty or not need <= set(df.columns):
        log.warning("%s has no method/size rows; the training-cost figure is left out", path)
        return None
    for c in ("size", "batch", "params", "train_step_s", "infer_img_per_s", "peak_mem_mb"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def load(source: Collection | Sequence[str | Path], perf_json: Path | None = None,
         published: Path | None = None) -> ReportData:
    """The report's data from loaded records or from folders (unreadable files are then
    logged, one warning each, and left out)."""
    collection = source if isinstance(source, Collection) else load_folders(list(source))
    if not isinstance(source, Collection):
        for problem in collection.problems:
            log.warning("%s; left out of the report", problem)
    experiments = load_experiments(collection)
    return ReportData(experiments=experiments, runs=runs_frame(experiments),
                      published=load_published(published), perf=load_perf(perf_json),
                      problems=list(collection.problems), notes=list(collection.notes))
