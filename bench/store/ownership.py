"""Which job owns each run of an experiment folder, and the jobs file that says so.

A run's job can outlive the launch that made it: a task Slurm requeued by itself after
it was settled as ``node failed`` starts again later, while a newer launch has submitted
another job for the run. Only the run's *owner* writes its record: the job that the
launcher named last for it in ``slurm/jobs.json`` (:data:`JOBS_FILE`, which the launcher
writes when it submits, :func:`note_submitted`). A job that no longer owns its run
neither trains (its launcher checks :func:`not_owner` at its start) nor writes
(:meth:`~bench.store.run_store.RunStore.write_job` asks :func:`refusal`, under the run's
lock). A run computed without a job takes the run over (:func:`take_over`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from scaleqbench.bench.store.atomic_io import atomic_write_text
from scaleqbench.bench.store.locks import run_lock
from scaleqbench.bench.store.record import RunRecord

__all__ = ["JOBS_FILE", "load_jobs", "not_owner", "note_submitted", "owner", "refusal",
           "take_over"]

#: where a launcher that submits jobs names the job that owns each run now (``{run_id:
#: {"job_id": ..., "attempts": [...]}}``, relative to the experiment folder)
JOBS_FILE = Path("slurm") / "jobs.json"


def _read_jobs(folder: str | Path) -> dict:
    """The whole jobs file of ``folder``, runs taken over included (empty when none)."""
    try:
        jobs = json.loads((Path(folder) / JOBS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return jobs if isinstance(jobs, dict) else {}


def _save_jobs(folder: str | Path, jobs: Mapping[str, dict]) -> None:
    atomic_write_text(Path(folder) / JOBS_FILE, json.dumps(jobs, indent=2) + "\n")


def load_jobs(folder: str | Path) -> dict[str, dict]:
    """``{run_id: {"job_id": ..., "attempts": [...]}}`` of the runs a job owns now (empty
    when none)."""
    return {rid: e for rid, e in _read_jobs(folder).items()
            if isinstance(e, dict) and e.get("job_id")}


def note_submitted(folder: str | Path, by_run: Mapping[str, str]) -> None:
    """Name the job just submitted for each run (``{run_id: job_id}``) as its owner, adding
    it to the run's attempts. Every other entry stays, runs taken over included: dropping
    one would make its run ownerless, and a requeued job of it free to write again."""
    jobs = _read_jobs(folder)
    for run_id, job_id in by_run.items():
        entry = jobs.setdefault(run_id, {"attempts": []})
        entry["job_id"] = job_id
        entry.setdefault("attempts", []).append(job_id)
    _save_jobs(folder, jobs)


def owner(folder: str | Path, run_id: str) -> str | None:
    """The job that owns the run now: the latest one a launcher submitted for it
    (:data:`JOBS_FILE`); ``""`` when a run without a job (a local one) took it over
    (:func:`take_over`); None when no launcher ever submitted one (anyone may write)."""
    entry = _read_jobs(folder).get(run_id)
    if not isinstance(entry, dict):
        return None
    return str(entry.get("job_id") or "")


def take_over(folder: str | Path, run_id: str) -> None:
    """A run computed without a job (locally) owns the run from now on: no job submitted
    for it earlier may write its record. Its entry keeps its attempts."""
    with run_lock(Path(folder), run_id):
        jobs = _read_jobs(folder)
        entry = jobs.get(run_id)
        if isinstance(entry, dict) and entry.get("job_id"):
            jobs[run_id] = {k: v for k, v in entry.items() if k != "job_id"}
            _save_jobs(folder, jobs)


def not_owner(folder: str | Path, run_id: str, job_id: str) -> str | None:
    """Why the job ``job_id`` does not own the run (another job does, or a run without a
    job took it over); None when it does, or when no launcher names an owner."""
    found = owner(folder, run_id)
    if found is None or found == job_id:
        return None
    return (f"job {job_id} no longer owns the run: "
            + (f"job {found} does (the latest submitted for it)" if found
               else "a run without a job (a local one) took it over"))


def refusal(folder: str | Path, run_id: str, job_id: str,
            read_current: Callable[[], RunRecord | None]) -> str | None:
    """Why the job ``job_id`` may not write the run's record (None: it may): it does not
    own the run (:func:`not_owner`), or a launcher settled this job's run already (a job
    never replaces a record that settled that same job). ``read_current`` gives the run's
    record as it stands; it is read only when the job owns the run (a job that does not
    is refused whatever the record). Its caller holds the run's lock."""
    why = not_owner(folder, run_id, job_id)
    if why:
        return why
    current = read_current()
    if current is not None and current.settled_by and current.job_id == job_id:
        return (f"job {job_id} ended for the {current.settled_by} launcher (recorded "
                f"{current.outcome}) before this process finished (re-run the sweep to "
                "retry the run)")
    return None
