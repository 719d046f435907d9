"""The result store: one JSON record per run, written atomically, plus the experiment lock.

Layout of an experiment folder::

    <experiment>/runs/<run-id>.json     one record per run (status ok | failed)
    <experiment>/checkpoints/<run-id>.pt best-validation weights (not committed)
    <experiment>/leaderboard.{md,csv}

A record is written to a temporary file in the same folder, flushed, then
renamed over the final name, so a crash never leaves a half-written record.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

from scalebench.bench.atomic_io import atomic_write_text
from scalebench.bench.errors import ExperimentLockedError, OutputNotWritableError

__all__ = ["ExperimentLock", "atomic_write_text", "ensure_writable", "load_record",
           "load_records", "record_path", "write_record"]


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def record_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_id}.json"


def write_record(out_dir: Path, record: dict) -> Path:
    path = record_path(out_dir, record["run_id"])
    atomic_write_text(path, json.dumps(_clean(record), indent=2,
                                       default=_json_default) + "\n")
    return path


def load_record(path: Path) -> dict | None:
    """A record, or None when the file is not a readable record (reported by the caller)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "run_id" in data else None


def load_records(folder: Path) -> list[dict]:
    """Every readable record under ``folder/runs`` (or ``folder`` itself)."""
    folder = Path(folder)
    runs = folder / "runs" if (folder / "runs").is_dir() else folder
    records = []
    for path in sorted(runs.glob("*.json")):
        rec = load_record(path)
        if rec is not None:
            rec.setdefault("record_path", str(path))
            records.append(rec)
    return records


def ensure_writable(out_dir: Path) -> Path:
    """Create ``out_dir`` (and ``runs/``) or fail with a clear message."""
    out_dir = Path(out_dir)
    try:
        (out_dir / "runs").mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputNotWritableError(
            f"cannot write to the output folder {out_dir} ({exc.strerror or exc}); "
            "pass a writable --out") from exc
    return out_dir


class ExperimentLock:
    """An exclusive, non-blocking lock on an experiment folder (``.bench.lock``).

    The kernel drops the lock when the holder exits, so a crashed run never
    leaves the folder locked.
    """

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / ".bench.lock"
        self._fh = None

    def __enter__(self) -> ExperimentLock:
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            self._fh = None
            raise ExperimentLockedError(
                f"experiment folder {self.path.parent} is in use by another bench run "
                f"(pid {holder}); wait for it to finish or pass another --out") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
