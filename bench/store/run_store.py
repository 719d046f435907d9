"""The result store: one JSON record per run, written atomically, plus the experiment lock.

Layout of an experiment folder::

    <experiment>/runs/<run-id>.json     one record per run (status ok | failed)
    <experiment>/checkpoints/<run-id>.pt best-validation weights (not committed)
    <experiment>/leaderboard.{md,csv}

A record is written to a temporary file in the same folder, flushed, then
renamed over the final name, so a crash never leaves a half-written record.
A file that is not a readable record (truncated, edited, copied half-way) is
never skipped in silence and never deleted: readers report it by name, and
before anything is written in its place it is moved aside to
``<run-id>.json.corrupt-<UTC time>``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from scaleqbench.bench.store.atomic_io import atomic_write_text
from scaleqbench.bench.errors import (
    CorruptRecordError,
    ExperimentLockedError,
    NoRecordsError,
    OutputNotWritableError,
    RecordSchemaError,
)
from scaleqbench.bench.store.record import RunRecord, run_identity

__all__ = ["Collection", "ExperimentLock", "FolderRecords", "atomic_write_text",
           "ensure_writable", "load_folders", "load_record", "read_record", "record_path",
           "resume_record", "scan_records", "set_aside", "write_record"]

log = logging.getLogger(__name__)


def record_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{run_id}.json"


def read_record(path: Path) -> RunRecord:
    """The record in ``path``; :class:`CorruptRecordError` (naming it) when it is not one,
    ``FileNotFoundError`` when there is no such file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(path, f"cannot read it: {exc}") from None
    return RunRecord.from_json(text, path)


def load_record(path: Path) -> RunRecord | None:
    """The record in ``path``, None when there is none; raises :class:`CorruptRecordError`."""
    try:
        return read_record(path)
    except FileNotFoundError:
        return None


def set_aside(path: Path) -> Path:
    """Move a damaged record out of the way (``<name>.corrupt-<UTC time>``), never deleting it."""
    path = Path(path)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():  # two in one second: keep both
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


def write_record(out_dir: Path, record: RunRecord) -> Path:
    """Write ``record`` atomically to ``out_dir/runs/<run-id>.json``; a damaged file already
    there is moved aside first (said in a warning)."""
    path = record_path(out_dir, record.run_id)
    text = record.to_json()
    try:
        load_record(path)
    except RecordSchemaError:
        raise  # a newer scaleqbench's record: not ours to replace
    except CorruptRecordError as exc:
        log.warning("%s; moved to %s before writing the new record", exc, set_aside(path).name)
    atomic_write_text(path, text)
    record.path = path
    return path


def resume_record(out_dir: Path, run_id: str) -> RunRecord | None:
    """The record a resumed sweep keeps for ``run_id``, or None when the run is to be run.

    A damaged record is moved aside (never deleted) and the run recomputed, said in
    a warning; a record of a newer schema stops the sweep (:class:`RecordSchemaError`)
    rather than being replaced by an older scaleqbench.
    """
    path = record_path(out_dir, run_id)
    try:
        return load_record(path)
    except RecordSchemaError:
        raise
    except CorruptRecordError as exc:
        log.warning("%s; moved to %s, the run will be recomputed", exc, set_aside(path).name)
        return None


def _runs_folder(folder: Path) -> Path:
    folder = Path(folder)
    return folder / "runs" if (folder / "runs").is_dir() else folder


def scan_records(folder: Path) -> tuple[list[RunRecord], list[CorruptRecordError]]:
    """Every record under ``folder/runs`` (or ``folder`` itself), and one problem per file
    that is not a readable record (each names its file)."""
    records, problems = [], []
    for path in sorted(_runs_folder(folder).glob("*.json")):
        try:
            records.append(read_record(path))
        except FileNotFoundError:
            continue  # removed while we listed the folder
        except CorruptRecordError as exc:
            problems.append(exc)
    return records, problems


@dataclass
class FolderRecords:
    """The records one experiment folder contributes (copies of earlier ones left out)."""

    folder: Path
    records: list[RunRecord] = field(default_factory=list)


@dataclass
class Collection:
    """The records of several folders, each run once, with what could not be read."""

    folders: list[FolderRecords]
    problems: list[CorruptRecordError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # duplicates counted once, and why

    @property
    def records(self) -> list[RunRecord]:
        return [r for f in self.folders for r in f.records]


def _stands_for_the_run(new: RunRecord, old: RunRecord) -> bool:
    """Whether ``new`` rather than ``old`` (two records of one run) counts: a finished run
    over a failed one, else the later finished (an exact copy: the first one read)."""
    if new.ok != old.ok:
        return new.ok
    return (new.finished_at or "") > (old.finished_at or "")


def load_folders(folders: list[str | Path]) -> Collection:
    """Read experiment folders; a run found more than once counts once.

    A run is its protocol, method and seed (:func:`~bench.record.run_identity`),
    so copies of a folder, a folder given twice, and a record made before and
    again after run ids changed all count once; a note says where. Raises
    :class:`NoRecordsError` for a folder without any record file.
    """
    out = Collection(folders=[])
    kept: dict[tuple, tuple[int, RunRecord]] = {}  # run -> (folder index, record)
    copies: dict[tuple[str, str], int] = {}
    seen_folders: dict[Path, Path] = {}
    for folder in map(Path, folders):
        real = folder.resolve()
        if real in seen_folders:
            out.notes.append(f"{folder} was given twice (as {seen_folders[real]}): read once")
            continue
        seen_folders[real] = folder
        records, problems = scan_records(folder)
        if not records and not problems:
            raise NoRecordsError(f"no run records under {folder} (expected {folder}/runs/*.json); "
                                 "run `bench run --out` there first")
        out.problems += problems
        here = FolderRecords(folder)
        out.folders.append(here)
        for rec in records:
            run = run_identity(rec)
            if run not in kept:
                kept[run] = (len(out.folders) - 1, rec)
                here.records.append(rec)
                continue
            index, first = kept[run]
            where = (str(out.folders[index].folder), str(folder))
            copies[where] = copies.get(where, 0) + 1
            if _stands_for_the_run(rec, first):
                out.folders[index].records = [r for r in out.folders[index].records
                                              if r is not first]
                kept[run] = (len(out.folders) - 1, rec)
                here.records.append(rec)
    for (first, other), n in copies.items():
        if first == other:
            out.notes.append(f"{n} record file(s) in {first} hold a run that another file "
                             "there holds too: each run counted once (the latest finished)")
        else:
            out.notes.append(f"{n} run(s) of {other} are also in {first} (same protocol, "
                             "method and seed): each counted once")
    return out


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
