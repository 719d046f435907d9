"""The run store: an experiment folder's records, read, written and settled through one object.

Layout of an experiment folder::

    <experiment>/runs/<run-id>.json     one record per run (status ok | failed)
    <experiment>/checkpoints/<run-id>.pt best-validation weights (not committed)
    <experiment>/leaderboard.{md,csv}

:class:`RunStore` is the only code that reads or writes ``runs/``. A record is
written atomically (:mod:`.atomic_io`), so a crash never leaves a half-written
one. A file that is not a readable record (truncated, edited, copied half-way,
a value out of its range) is never skipped in silence and never deleted:
readers report it by name, and before anything is written in its place it is
moved aside to ``<run-id>.json.corrupt-<UTC time>``. A record of a newer schema
is never replaced (:class:`~bench.errors.RecordSchemaError`).

Settlement. A launcher *settles* a run whose job ended without a record
(cancelled, timed out past its requeues, node failure) by writing a ``failed``
record that names the job (``job_id``) and itself (``settled_by``). A job can
still be alive at that point (submitit ignores the first SIGTERM), and if it then
wrote its ``ok`` record, a leaderboard already written would no longer match
``runs/``. The rule: **a job never replaces a record that settled that same
job.** The job writes through :meth:`RunStore.write_job`, which refuses in that
case; the launcher through :meth:`RunStore.settle`, which keeps a record the job
managed to write first. Both check and write under the run's lock.

Ownership. A job writes a run's record only while it owns the run: the job its launcher
submitted last for it (:mod:`.ownership`). :meth:`RunStore.write_job` checks that too,
under the same lock.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import secrets
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

from scaleqbench.bench.errors import (
    CorruptRecordError,
    OutputNotWritableError,
    RecordSchemaError,
)
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.atomic_io import atomic_write_text
from scaleqbench.bench.store.locks import ExperimentLock, run_lock
from scaleqbench.bench.store.ownership import refusal
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.rescue import unwritten_record_error

__all__ = ["RunStore", "set_aside", "unfinished_record", "writable_folder"]

log = logging.getLogger(__name__)


def writable_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder this process can write: created when missing; a regular file or a
    folder without write permission is :class:`OutputNotWritableError` (naming ``flag``)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise OutputNotWritableError(f"{flag} {path} is a broken link (to {os.readlink(path)}); "
                                     "remove it or pass another folder")
    if path.exists() and not path.is_dir():
        raise OutputNotWritableError(f"{flag} {path} is a file, not a folder; pass a folder")
    probe = path / f".write-probe-{secrets.token_hex(4)}"  # unique: sweeps may share a folder
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise OutputNotWritableError.refused(flag, path, exc) from None
    return path


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None when it exists)."""
    missing = None
    for part in (path, *path.parents):
        if part.exists():
            break
        missing = part
    return missing


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


class RunStore:
    """The records of one experiment folder (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"RunStore({str(self.folder)!r})"

    def path(self, run_id: str) -> Path:
        return self.folder / "runs" / f"{run_id}.json"

    # ---- reading ------------------------------------------------------------------------------

    @staticmethod
    def read_file(path: str | Path) -> RunRecord:
        """The record in the file ``path`` (wherever it is); :class:`CorruptRecordError`
        (naming it) when it is not one, ``FileNotFoundError`` when there is no such file."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(path, f"cannot read it: {exc}") from None
        return RunRecord.from_json(text, path)

    def read(self, run_id: str) -> RunRecord | None:
        """The run's record, None when there is none; :class:`CorruptRecordError` (naming the
        file) when its file is not a readable record."""
        try:
            return self.read_file(self.path(run_id))
        except FileNotFoundError:
            return None

    def peek(self, run_id: str) -> RunRecord | CorruptRecordError | None:
        """The run's record, what makes its file unreadable, or None when there is none: one
        read that tells a run's state. A newer schema's record raises
        :class:`RecordSchemaError` (no older scaleqbench decides about it)."""
        try:
            return self.read(run_id)
        except RecordSchemaError:
            raise
        except CorruptRecordError as exc:
            return exc

    def current(self, run_id: str, if_corrupt: str | None = None) -> RunRecord | None:
        """The run's record as it stands, None when there is none or its file is damaged.

        Launchers poll and compare records here; a damaged file is named where it is
        replaced (:meth:`write`) or shown (``bench status``), so it is only named here when
        ``if_corrupt`` says what the caller does instead.
        """
        found = self.peek(run_id)
        if isinstance(found, CorruptRecordError):
            if if_corrupt:
                log.warning("%s; %s", found, if_corrupt)
            return None
        return found

    def resume(self, run_id: str) -> RunRecord | None:
        """The record a resumed sweep keeps for ``run_id``, or None when the run is to be run.

        A damaged record is moved aside (never deleted) and the run recomputed, said in a
        warning; a record of a newer schema stops the sweep (:class:`RecordSchemaError`).
        """
        found = self.peek(run_id)
        if isinstance(found, CorruptRecordError):
            self.set_aside(found, "the run will be recomputed")
            return None
        return found

    def set_aside(self, problem: CorruptRecordError, then: str) -> Path | None:
        """Move the damaged file ``problem`` names aside, saying so and what ``then`` happens;
        None when it is gone already."""
        try:
            moved = set_aside(Path(problem.path))
        except FileNotFoundError:
            return None
        log.warning("%s; moved to %s, %s", problem, moved.name, then)
        return moved

    def scan(self) -> tuple[list[RunRecord], list[CorruptRecordError]]:
        """Every record under ``runs/`` (or in the folder itself, when it is a ``runs/``
        folder), and one problem per file that is not a readable record (each names it)."""
        runs = self.folder / "runs" if (self.folder / "runs").is_dir() else self.folder
        records, problems = [], []
        for path in sorted(runs.glob("*.json")):
            try:
                records.append(self.read_file(path))
            except FileNotFoundError:
                continue  # removed while we listed the folder
            except CorruptRecordError as exc:
                problems.append(exc)
        return records, problems

    # ---- writing ------------------------------------------------------------------------------

    def write(self, record: RunRecord) -> Path:
        """Write ``record`` atomically to ``runs/<run-id>.json``; a damaged file already there
        is moved aside first (said in a warning), a newer schema's record is never replaced.
        A write the system refuses raises one line (:mod:`.rescue`); an ``ok`` record is then
        kept in a fallback folder that the line names."""
        path = self.path(record.run_id)
        text = record.to_json()
        found = self.peek(record.run_id)
        try:
            if isinstance(found, CorruptRecordError):
                self.set_aside(found, "before writing the new record")
            atomic_write_text(path, text)
        except OSError as exc:  # a finished result is kept elsewhere, never dropped
            raise unwritten_record_error(self.folder, path, text, exc, keep=record.ok) from exc
        record.path = path
        return path

    def write_job(self, record: RunRecord) -> bool:
        """Write the record of the job ``record.job_id``, unless that job may no longer write
        it (:func:`~.ownership.refusal`); False when refused. A run in this process (no job id) always
        writes."""
        if not record.job_id:  # nothing settles an in-process run behind its back
            self.write(record)
            return True
        with self.run_lock(record.run_id):
            why = refusal(self.folder, record.run_id, record.job_id,
                          lambda: self.current(record.run_id))
            if why:
                log.warning("run %s: %s; its record stands, this result is dropped",
                            record.run_id, why)
                return False
            self.write(record)
            return True

    def settle(self, spec: RunSpec, job_id: str, record: RunRecord) -> RunRecord:
        """Write ``record`` (:func:`unfinished_record`) for a job that ended, unless a record
        that must stand is there: one of this job (it wrote its own, or it was settled
        before), or an ``ok`` one (a run with an ``ok`` record is never submitted again).
        Returns the record that stands."""
        with self.run_lock(spec.run_id):
            current = self.current(spec.run_id, if_corrupt="recording how the job ended instead")
            if current is not None and (current.job_id == job_id or current.ok):
                return current
            self.write(record)
            return record

    # ---- the folder ---------------------------------------------------------------------------

    def ensure_writable(self) -> Path:
        """The folder created, and every place a run writes checked before it trains: ``runs/``
        (records, epoch CSVs), ``checkpoints/``, ``.locks/`` and the folder's lock file
        (:func:`writable_folder`; a lock file that is not a writable file is refused too).
        Refused, it leaves no folder it created."""
        made = _first_missing(self.folder)
        try:
            writable_folder(self.folder)
            for sub in ("runs", "checkpoints", ".locks"):
                writable_folder(self.folder / sub)
            lock = self.folder / ".bench.lock"
            if lock.exists() and (not lock.is_file() or not os.access(lock, os.W_OK)):
                what = "not a file" if not lock.is_file() else "read-only"
                raise OutputNotWritableError(f"cannot write the lock file {lock} (it is {what});"
                                             " remove it (no bench run holds it) or pass "
                                             "another --out")
        except OutputNotWritableError:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
            raise
        return self.folder

    def lock(self) -> ExperimentLock:
        """The folder's lock (:class:`~bench.store.locks.ExperimentLock`), to enter."""
        return ExperimentLock(self.folder)

    def run_lock(self, run_id: str) -> AbstractContextManager[None]:
        """One run's lock: who checks its record and writes it holds it."""
        return run_lock(self.folder, run_id)


def unfinished_record(spec: RunSpec, *, launcher: str, job_id: str, end_state: str,
                      error: str, backend_state: str = "", log_file: str = "") -> RunRecord:
    """The ``failed`` record a launcher writes for a run whose job ended without one;
    ``backend_state`` is the backend's own words (e.g. Slurm's ``CANCELLED by 0``)."""
    return RunRecord.for_spec(spec, status="failed", job_id=job_id, settled_by=launcher,
                              end_state=end_state, error=error,
                              backend_state=backend_state or None, log=log_file or None)
