"""Who writes a run's record once its job has ended: the job, or the launcher that settled it.

A launcher *settles* a run whose job ended without a record (cancelled, timed
out past its requeues, node failure) by writing a ``failed`` record that names
the job (``job_id``) and itself (``settled_by``). From then on the sweep
considers that job ended, and ``bench run`` may already have written the
leaderboard. A job can still be alive at that point: submitit ignores the first
SIGTERM, so a task that ``scancel`` hits near its end (or every task, once the
cluster is stopped) may finish a minute later. If it then wrote its ``ok``
record, ``leaderboard.md`` would no longer match ``runs/``.

The rule: **a job never replaces a record that settled that same job.** The job
writes through :func:`write_job_record`, which refuses in that case; the
launcher settles through :func:`settle_unfinished`, which keeps a record the job
managed to write first. Both check and write under one per-run lock, so neither
can slip between the other's check and write. A later attempt (a new job id) or
a run in this process (no job id) writes as usual: the sweep asked for it.

:class:`RecordView` is the one place where launchers, ``bench status`` and
``bench collect`` read record fields.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalebench.bench.records import load_record, record_path, write_record
from scalebench.bench.spec import RunSpec

__all__ = ["RecordView", "read_view", "run_lock", "settle_unfinished", "write_job_record"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordView:
    """The fields of a run record that launching and following a sweep need."""

    run_id: str
    status: str  # "ok" | "failed"
    method: str = ""
    seed: int | None = None
    job_id: str = ""  # the job that ran it ("" when it ran in-process)
    settled_by: str = ""  # the launcher that wrote it for a job that ended without one
    end_state: str = ""  # how that job ended (one of launch_api.STATES), when settled
    error: str = ""
    log: str = ""  # the job's log file
    test_acc: float | None = None

    @classmethod
    def of(cls, rec: Mapping[str, Any]) -> RecordView:
        return cls(run_id=rec["run_id"], status=rec.get("status") or "failed",
                   method=rec.get("method") or "", seed=rec.get("seed"),
                   job_id=rec.get("job_id") or "", settled_by=rec.get("settled_by") or "",
                   end_state=rec.get("end_state") or "", error=rec.get("error") or "",
                   log=rec.get("log") or "", test_acc=rec.get("test_acc"))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def outcome(self) -> str:
        """The run's final state: ``done``, or how it failed (one of launch_api.ENDED)."""
        return "done" if self.ok else (self.end_state or "failed")

    @property
    def last_error_line(self) -> str:
        lines = self.error.strip().splitlines()
        return lines[-1] if lines else ""


def read_view(out_dir: Path, run_id: str) -> RecordView | None:
    rec = load_record(record_path(out_dir, run_id))
    return None if rec is None else RecordView.of(rec)


@contextmanager
def run_lock(out_dir: Path, run_id: str) -> Iterator[None]:
    """An exclusive lock on one run's record, across processes and (through the file system)
    across the login and compute nodes."""
    path = Path(out_dir) / ".locks" / f"{run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:  # closing the file releases the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks: the window is milliseconds wide
            log.debug("no lock on %s (%s); checking and writing unlocked", path, exc)
        yield


def write_job_record(out_dir: Path, record: dict, *, run_id: str, job_id: str | None) -> bool:
    """Write a job's record, unless a launcher already settled this job; False when refused."""
    if not job_id:  # an in-process run: nothing settles it behind its back
        write_record(Path(out_dir), record)
        return True
    with run_lock(out_dir, run_id):
        current = read_view(out_dir, run_id)
        if current is not None and current.settled_by and current.job_id == job_id:
            log.warning("run %s: job %s ended for the %s launcher (recorded %s) before this "
                        "process finished; its record stands, this result is dropped (re-run "
                        "the sweep to retry the run)", run_id, job_id, current.settled_by,
                        current.outcome)
            return False
        write_record(Path(out_dir), record)
        return True


def unfinished_record(spec: RunSpec, *, launcher: str, job_id: str, end_state: str,
                      error: str, backend_state: str = "", log_file: str = "") -> dict:
    """The ``failed`` record a launcher writes for a run whose job ended without one."""
    record = {
        "run_id": spec.run_id, "experiment": spec.experiment, "method": spec.label,
        "method_name": spec.method, "method_kwargs": dict(spec.method_kwargs),
        "dataset": spec.dataset, "source": spec.source, "seed": spec.seed, "preset": spec.preset,
        "spec": spec.to_dict(), "status": "failed", "job_id": job_id, "settled_by": launcher,
        "end_state": end_state, "error": error,
    }
    if backend_state:
        record["backend_state"] = backend_state  # the backend's words, e.g. "CANCELLED by 0"
    if log_file:
        record["log"] = log_file
    return record


def settle_unfinished(out_dir: Path, spec: RunSpec, job_id: str, record: dict) -> RecordView:
    """Write ``record`` (from :func:`unfinished_record`) for a job that ended, unless a record
    that must stand is there: one of this job (it wrote its own, or it was settled before), or
    an ``ok`` one (a newer run succeeded: a run with an ``ok`` record is never submitted).
    Returns the record that stands."""
    with run_lock(out_dir, spec.run_id):
        current = read_view(out_dir, spec.run_id)
        if current is not None and (current.job_id == job_id or current.ok):
            return current
        write_record(Path(out_dir), record)
        return RecordView.of(record)
