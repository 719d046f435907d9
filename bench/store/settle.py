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

Records are :class:`~bench.record.RunRecord` objects: ``job_id``, ``settled_by``,
``end_state`` and ``backend_state`` are its fields, :attr:`RunRecord.outcome` the
state a record gives its run. A damaged record file counts as no record here
(:func:`current_record`); writing the run's record moves it aside first
(:func:`bench.records.write_record`), said in a warning.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scaleqbench.bench.errors import CorruptRecordError
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import load_record, record_path, write_record
from scaleqbench.bench.spec import RunSpec

__all__ = ["current_record", "run_lock", "settle_unfinished", "unfinished_record",
           "write_job_record"]

log = logging.getLogger(__name__)


def current_record(out_dir: Path, run_id: str, if_corrupt: str | None = None
                   ) -> RunRecord | None:
    """The run's record as it stands, None when there is none or its file is damaged.

    Launchers poll and compare records here; a damaged file is named where it is
    replaced (:func:`bench.records.write_record`) or shown (``bench status``), so it
    is only named here when ``if_corrupt`` says what the caller does instead.
    """
    try:
        return load_record(record_path(out_dir, run_id))
    except CorruptRecordError as exc:
        if if_corrupt:
            log.warning("%s; %s", exc, if_corrupt)
        return None


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


def write_job_record(out_dir: Path, record: RunRecord, *, job_id: str | None) -> bool:
    """Write a job's record, unless a launcher already settled this job; False when refused."""
    if not job_id:  # an in-process run: nothing settles it behind its back
        write_record(Path(out_dir), record)
        return True
    with run_lock(out_dir, record.run_id):
        current = current_record(out_dir, record.run_id)
        if current is not None and current.settled_by and current.job_id == job_id:
            log.warning("run %s: job %s ended for the %s launcher (recorded %s) before this "
                        "process finished; its record stands, this result is dropped (re-run "
                        "the sweep to retry the run)", record.run_id, job_id,
                        current.settled_by, current.outcome)
            return False
        write_record(Path(out_dir), record)
        return True


def unfinished_record(spec: RunSpec, *, launcher: str, job_id: str, end_state: str,
                      error: str, backend_state: str = "", log_file: str = "") -> RunRecord:
    """The ``failed`` record a launcher writes for a run whose job ended without one;
    ``backend_state`` is the backend's own words (e.g. Slurm's ``CANCELLED by 0``)."""
    return RunRecord.for_spec(spec, status="failed", job_id=job_id, settled_by=launcher,
                              end_state=end_state, error=error,
                              backend_state=backend_state or None, log=log_file or None)


def settle_unfinished(out_dir: Path, spec: RunSpec, job_id: str, record: RunRecord
                      ) -> RunRecord:
    """Write ``record`` (from :func:`unfinished_record`) for a job that ended, unless a record
    that must stand is there: one of this job (it wrote its own, or it was settled before), or
    an ``ok`` one (a newer run succeeded: a run with an ``ok`` record is never submitted).
    Returns the record that stands."""
    with run_lock(out_dir, spec.run_id):
        current = current_record(out_dir, spec.run_id,
                                 if_corrupt="recording how the job ended instead")
        if current is not None and (current.job_id == job_id or current.ok):
            return current
        write_record(Path(out_dir), record)
        return record
