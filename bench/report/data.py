"""What a report is made of: records of several experiment folders, as DataFrames.

The per-run frame is :func:`bench.leaderboard.records_frame` plus the columns a
report needs beyond the leaderboard (base method name, folder, record path).
The long frames (accuracy per test size, equivariance error per layer and size,
training history) unpack the nested record fields the leaderboard ignores.
Published reference numbers come from ``scalebench.bench.published/published.csv`` (package data).
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from scalebench.bench.errors import NoRecordsError
from scalebench.bench.leaderboard import records_frame
from scalebench.bench.records import load_records

__all__ = ["PROTOCOL_ORDER", "PUBLISHED_CSV", "Experiment", "ReportData", "eq_frame",
           "history_frame", "load_experiments", "load_published", "parse_scale_key",
           "per_size_frame", "runs_frame", "section_key", "section_title", "sections"]

log = logging.getLogger(__name__)

PUBLISHED_CSV = "scalebench.bench.published/published.csv"  # package data, not a source-tree path


def published_csv_text() -> str:
    """The shipped published numbers, whether installed editable, as a wheel or zipped."""
    return importlib.resources.files("scalebench.bench.published").joinpath(
        "published.csv").read_text(encoding="utf-8")

SECTION_COLUMNS = ["dataset", "source", "preset"]
# the order the issue lists the protocols in; anything else follows alphabetically
PROTOCOL_ORDER = ["mnist-res", "mnist-scale", "mnist-scale+", "stl10", "stl10-res"]


@dataclass
class Experiment:
    """One experiment folder and the records found in it."""

    name: str
    folder: Path
    records: list[dict] = field(default_factory=list)


@dataclass
class ReportData:
    """Everything the tables, plots and the page are drawn from."""

    experiments: list[Experiment]
    runs: pd.DataFrame
    published: pd.DataFrame
    perf: pd.DataFrame | None = None

    @property
    def records(self) -> list[dict]:
        return [r for e in self.experiments for r in e.records]


def load_experiments(folders: list[str | Path]) -> list[Experiment]:
    """The records of every folder; a run id seen in an earlier folder is not counted twice."""
    seen: set[str] = set()
    out = []
    for folder in folders:
        folder = Path(folder)
        found = load_records(folder)
        if not found:
            raise NoRecordsError(f"no run records under {folder} (expected {folder}/runs/*.json); "
                                 "run `bench run --out` there first")
        fresh = [r for r in found if r["run_id"] not in seen]
        seen.update(r["run_id"] for r in fresh)
        name = fresh[0].get("experiment") if fresh else None
        out.append(Experiment(name=str(name or folder.name), folder=folder, records=fresh))
    return out


def base_method(record: dict) -> str:
    """The registry name without options (``fourier[impl=x]`` -> ``fourier``)."""
    name = record.get("method_name") or str(record.get("method") or "?")
    return str(name).split("[", 1)[0]


def runs_frame(experiments: list[Experiment]) -> pd.DataFrame:
    """One row per record: the leaderboard's run columns plus report-only columns."""
    records = [r for e in experiments for r in e.records]
    df = records_frame(records)
    df["method_name"] = [base_method(r) for r in records]
    df["folder"] = [str(e.folder) for e in experiments for _ in e.records]
    df["record_path"] = [r.get("record_path") for r in records]
    # a record without a source or preset still belongs in a section
    for col, default in (("source", "?"), ("preset", "?"), ("dataset", "?"), ("method", "?")):
        df[col] = df[col].fillna(default).astype(str)
    df["status"] = df["status"].fillna("failed")
    return df


def section_key(dataset: str, source: str, preset: str) -> tuple:
    rank = PROTOCOL_ORDER.index(dataset) if dataset in PROTOCOL_ORDER else len(PROTOCOL_ORDER)
    return (rank, dataset, source, preset)


def sections(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The (dataset, source, preset) groups of the report, protocols in the issue's order."""
    keys = {tuple(k) for k in runs[SECTION_COLUMNS].drop_duplicates().itertuples(index=False)}
    return sorted(keys, key=lambda k: section_key(*k))


def section_title(dataset: str, source: str, preset: str) -> str:
    return f"{dataset} (source {source}, preset {preset})"


def parse_scale_key(key: str) -> float:
    """A per-size key as a number: ``'28'`` -> 28, the scale bin ``'0.3-0.4'`` -> its middle."""
    key = str(key)
    if "-" in key.lstrip("-"):
        lo, hi = key.lstrip("-").split("-", 1)
        return (float(lo) + float(hi)) / 2
    return float(key)


def _is_bin(key: str) -> bool:
    return "-" in str(key).lstrip("-")


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _ok(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "ok"]


def _ident(r: dict) -> dict[str, Any]:
    return {"dataset": str(r.get("dataset") or "?"), "source": str(r.get("source") or "?"),
            "preset": str(r.get("preset") or "?"), "method": str(r.get("method") or "?"),
            "seed": r.get("seed")}


def per_size_frame(records: list[dict]) -> pd.DataFrame:
    """Accuracy per test size (or scale bin) of every ok run, long format."""
    rows = []
    for r in _ok(records):
        for key, acc in (r.get("per_size_acc") or {}).items():
            acc = _finite(acc)
            if acc is None:
                continue
            rows.append({**_ident(r), "key": str(key), "x": parse_scale_key(key),
                         "binned": _is_bin(key), "acc": acc})
    return pd.DataFrame(rows, columns=[*_ident({}).keys(), "key", "x", "binned", "acc"])


def eq_frame(records: list[dict]) -> pd.DataFrame:
    """Equivariance error per layer and size of every ok run, long format.

    ``depth`` is the layer's position among the run's spatial layers (1 = first);
    ``logits`` gets depth 0 and ``is_logits`` so plots can treat it apart, and
    ``is_headline`` marks the last spatial layer (the one ``eq_err`` averages).
    """
    rows = []
    for r in _ok(records):
        per_layer = r.get("equivariance_error") or {}
        spatial = [k for k in per_layer if k != "logits" and per_layer[k]]
        for layer, per_size in per_layer.items():
            for size, err in (per_size or {}).items():
                err = _finite(err)
                if err is None:
                    continue
                is_logits = layer == "logits"
                rows.append({**_ident(r), "layer": layer,
                             "depth": 0 if is_logits else spatial.index(layer) + 1,
                             "n_layers": len(spatial), "is_logits": is_logits,
                             "is_headline": bool(spatial) and layer == spatial[-1],
                             "size": parse_scale_key(size), "err": err})
    cols = [*_ident({}).keys(), "layer", "depth", "n_layers", "is_logits", "is_headline",
            "size", "err"]
    return pd.DataFrame(rows, columns=cols)


def history_frame(records: list[dict]) -> pd.DataFrame:
    """Per-epoch train loss / val accuracy of every run that recorded them (failed runs too:
    a curve that diverges is the most useful thing to see about a failed run)."""
    rows = []
    for r in records:
        for h in r.get("history") or []:
            if not isinstance(h, dict) or h.get("epoch") is None:
                continue
            rows.append({**_ident(r), "status": r.get("status"), "epoch": int(h["epoch"]),
                         "train_loss": _finite(h.get("train_loss")),
                         "val_acc": _finite(h.get("val_acc"))})
    cols = [*_ident({}).keys(), "status", "epoch", "train_loss", "val_acc"]
    return pd.DataFrame(rows, columns=cols)


def load_published(path: Path | None = None) -> pd.DataFrame:
    """The published reference numbers (``#`` lines are comments); empty when the file is absent."""
    cols = ["dataset", "method", "paper_method", "paper_dataset", "metric", "value", "source"]
    if path is None:
        path, text = PUBLISHED_CSV, published_csv_text()
    else:
        path = Path(path)
        if not path.is_file():
            log.info("no published reference numbers at %s", path)
            return pd.DataFrame(columns=cols)
        text = path.read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    df = pd.DataFrame(list(csv.DictReader(io.StringIO("\n".join(lines)))))
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {cols}")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df[cols].dropna(subset=["value"]).reset_index(drop=True)


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


def load(folders: list[str | Path], perf_json: Path | None = None,
         published: Path | None = None) -> ReportData:
    experiments = load_experiments(folders)
    return ReportData(experiments=experiments, runs=runs_frame(experiments),
                      published=load_published(published), perf=load_perf(perf_json))
