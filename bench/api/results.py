"""Experiment folders as pandas DataFrames: one row per run, as ``bench leaderboard`` reads them.

:func:`load_results` reads the run records of one or more experiment folders
(``<folder>/runs/*.json``) the way ``bench leaderboard`` does: a run found in
several folders counts once, and a file that is not a readable record is named
in a :class:`ResultsWarning` and left out. The scalar columns are those of the
leaderboard's own frame (:func:`bench.report.leaderboard.records_frame`), plus
where each record came from.

Per-size numbers (``per_size=True``) are *wide* columns, ``acc@8``, ``acc@9``, ...:
one row stays one run, so the per-size columns filter, group and aggregate with
the scalar ones (``df.groupby("method")[["acc@8", "acc@27"]].mean()``); a long
table is one ``df.melt`` away, while going from long back to one row per run
would need a pivot on every scalar column. Runs of protocols with different sizes
leave NaN in the sizes they did not measure.

The per-epoch history (``history=True``) is a column of lists, one dict per
epoch as training recorded it (``epoch``, ``train_loss``, ``train_acc``,
``val_acc``, ``lr``, ``time_s``, and ``val_acc@<size>`` per validation size on a
protocol of several sizes: the rows of the run's epoch CSV,
:mod:`bench.run.loggers`); :func:`history_frame` turns it into a long
table with one row per (run, epoch), the shape plotting libraries expect.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from scaleqbench.bench.api.runs import checkpoint_of
from scaleqbench.bench.errors import NoRecordsError
from scaleqbench.bench.report.leaderboard import records_frame
from scaleqbench.bench.run.metrics import summary_layer
from scaleqbench.bench.store.collection import load_folders
from scaleqbench.bench.store.record import RunRecord

__all__ = ["HISTORY_KEYS", "PER_SIZE_PREFIXES", "ResultsWarning", "history_frame",
           "load_results"]

#: the per-size column families of ``per_size=True``: prefix -> what it holds
PER_SIZE_PREFIXES = {
    "acc": "test accuracy at that size (or scale bin, e.g. acc@0.3-0.4 on mnist-scale)",
    "acc_recal": "the same with BatchNorm statistics re-estimated per size (where applied)",
    "eq_err": "ideal equivariance error of the summary layer at that size (eq_err's terms)",
    "logit_inv_err": "invariance error of the logits at that size",
}
#: the columns of :func:`history_frame` that identify a run
HISTORY_KEYS = ("run_id", "method", "dataset", "seed")


class ResultsWarning(UserWarning):
    """A record file left out (not a readable record), or a run found twice and counted once."""


def _folders(folders: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(folders, (str, os.PathLike)):
        return [Path(folders)]
    return [Path(f) for f in folders]


def _size_order(key: str) -> tuple:
    """Sizes numerically (``8`` before ``10``), scale bins by their lower edge, then text."""
    head = key.split("-")[0]
    try:
        return (0, float(head), key)
    except ValueError:
        return (1, 0.0, key)


def _per_size(record: RunRecord) -> dict[str, float]:
    """``{"acc@8": ..., "eq_err@8": ...}`` for one record (see :data:`PER_SIZE_PREFIXES`)."""
    eq = record.equivariance_error or {}
    layer = summary_layer(eq)
    families: dict[str, Mapping[str, Any]] = {
        "acc": record.per_size_acc or {}, "acc_recal": record.per_size_acc_recal or {},
        "eq_err": eq.get(layer, {}) if layer else {}, "logit_inv_err": eq.get("logits", {})}
    return {f"{prefix}@{key}": math.nan if value is None else float(value)
            for prefix, values in families.items() for key, value in values.items()}


def _per_size_columns(records: list[RunRecord]) -> pd.DataFrame:
    rows = [_per_size(r) for r in records]
    keys = {k for row in rows for k in row}
    columns = [k for prefix in PER_SIZE_PREFIXES for k in
               sorted((k for k in keys if k.rsplit("@", 1)[0] == prefix),
                      key=lambda k: _size_order(k.rsplit("@", 1)[1]))]
    return pd.DataFrame(rows, columns=columns, dtype=float)


def _where_columns(records: list[RunRecord], folder_of: list[Path]) -> pd.DataFrame:
    """Where each record came from, and the run facts a leaderboard row does not show."""
    return pd.DataFrame({
        "folder": [str(f) for f in folder_of],
        "record_path": [str(r.path) if r.path else None for r in records],
        "checkpoint": [_checkpoint_or_none(r) for r in records],
        "best_epoch": pd.array([r.best_epoch for r in records], dtype="Int64"),
        "epochs_trained": pd.array([r.epochs for r in records], dtype="Int64"),
        "finished_at": [r.finished_at for r in records],
    })


def _checkpoint_or_none(record: RunRecord) -> str | None:
    path = checkpoint_of(record)
    return str(path) if path is not None else None


def load_results(folders: str | os.PathLike | Iterable[str | os.PathLike], *,
                 per_size: bool = False, history: bool = False) -> pd.DataFrame:
    """One row per run record in the experiment folder(s) ``folders``.

    Columns: the leaderboard's per-run columns (``run_id``, ``method``, ``dataset``,
    ``seed``, ``status``, ``test_acc``, ``scale_consistency``, ``eq_err``,
    ``logit_inv_err``, ``train_time_s``, ... and every protocol field; ``protocol``
    holds the :class:`~bench.spec.Protocol` object the leaderboard groups by), then
    ``folder``, ``record_path``, ``checkpoint`` (the best-weights file, None when it is
    not there), ``best_epoch``, ``epochs_trained`` and ``finished_at``. With
    ``per_size``: ``acc@<size>``, ``acc_recal@<size>``, ``eq_err@<size>`` and
    ``logit_inv_err@<size>`` (:data:`PER_SIZE_PREFIXES`); with ``history``: a column
    ``history`` of per-epoch lists (:func:`history_frame` makes it a long table).

    A file that is not a readable record is named in a :class:`ResultsWarning` and left
    out; so is a run found twice (counted once). Raises
    :class:`~bench.errors.NoRecordsError` when a folder holds no record file or no
    record is readable.
    """
    found = load_folders(_folders(folders))
    for problem in found.problems:
        warnings.warn(f"{problem}; left out", ResultsWarning, stacklevel=2)
    for note in found.notes:
        warnings.warn(note, ResultsWarning, stacklevel=2)
    records = found.records
    if not records:
        names = ", ".join(str(f.folder) for f in found.folders)
        raise NoRecordsError(f"no readable run records in {names} ({len(found.problems)} "
                             "unreadable file(s), named in warnings)")
    folder_of = [f.folder for f in found.folders for _ in f.records]
    frame = records_frame(records)
    extra = [_where_columns(records, folder_of)] + ([_per_size_columns(records)] if per_size
                                                    else [])
    # a column the leaderboard's frame has already is kept as it has it
    frame = pd.concat([frame, *(e.drop(columns=[c for c in e if c in frame]) for e in extra)],
                      axis=1)
    if history:
        frame["history"] = [[dict(epoch) for epoch in r.history] for r in records]
    return frame


def history_frame(results: pd.DataFrame) -> pd.DataFrame:
    """The ``history`` column of :func:`load_results` (``history=True``) as a long table:
    one row per (run, epoch), with :data:`HISTORY_KEYS` and each epoch's values."""
    if "history" not in results:
        raise ValueError("results has no history column: load it with "
                         "load_results(..., history=True)")
    keys = [k for k in HISTORY_KEYS if k in results]
    rows = [{**{k: row[k] for k in keys}, **epoch}
            for _, row in results.iterrows() for epoch in row["history"]]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "epoch"])
    return frame
