"""The Slurm launcher: a sweep becomes one submitit job array, followed until every task ends.

Each pending RunSpec is one array task running :class:`bench.job.SweepJob`.
Logs and submitit's pickles live in ``<experiment>/slurm/``; ``jobs.json`` there
maps run ids to their job ids, so ``bench status`` and ``bench collect`` can
find the jobs later (``--detach``). A task that Slurm ends without a record
(cancelled, timed out past its requeues, node failure) gets a ``failed``
record saying so, so nothing is reported as hanging.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import submitit
from tqdm.auto import tqdm

from scalebench.bench.errors import CorruptRecordError
from scalebench.bench.job import SweepJob
from scalebench.bench.record import RunRecord
from scalebench.bench.records import atomic_write_text, load_record, record_path, write_record
from scalebench.bench.slurm_config import SlurmConfig
from scalebench.bench.spec import RunSpec

__all__ = ["SlurmLauncher", "classify", "job_log_tail", "load_jobs", "slurm_job",
           "record_unfinished", "STATES"]

log = logging.getLogger(__name__)

#: what ``bench status`` shows, in display order
STATES = ("queued", "running", "done", "failed", "cancelled", "timed out", "node failed",
          "corrupt record", "not submitted", "unknown")
_QUEUED = {"PENDING", "REQUEUED", "CONFIGURING", "PREEMPTED", "RESIZING", "SUSPENDED",
           "REQUEUE_HOLD", "REQUEUE_FED", "READY"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
_FAILED = {"FAILED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "INTERRUPTED"}


def classify(slurm_state: str) -> str:
    """Map a Slurm/sacct state (``'CANCELLED by 0'``...) onto one of :data:`STATES`."""
    word = (slurm_state or "UNKNOWN").split()[0].upper().rstrip("+")
    if word in _QUEUED:
        return "queued"
    if word in _RUNNING:
        return "running"
    if word == "COMPLETED":
        return "done"
    if word == "CANCELLED":
        return "cancelled"
    if word == "TIMEOUT":
        return "timed out"
    if word == "NODE_FAIL":
        return "node failed"
    if word in _FAILED:
        return "failed"
    return "unknown"


def slurm_folder(out_dir: Path) -> Path:
    return Path(out_dir) / "slurm"


def jobs_file(out_dir: Path) -> Path:
    return slurm_folder(out_dir) / "jobs.json"


def load_jobs(out_dir: Path) -> dict[str, dict]:
    """``{run_id: {"job_id": ..., "attempts": [...]}}`` of an experiment (empty when none)."""
    try:
        return json.loads(jobs_file(out_dir).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _save_jobs(out_dir: Path, jobs: dict[str, dict]) -> None:
    atomic_write_text(jobs_file(out_dir), json.dumps(jobs, indent=2) + "\n")


def slurm_job(out_dir: Path, job_id: str) -> submitit.SlurmJob:
    return submitit.SlurmJob(folder=slurm_folder(out_dir) / "%j", job_id=job_id)


def job_log_tail(out_dir: Path, job_id: str, lines: int = 3) -> str:
    """The last lines of a job's stderr (else stdout) log, for status and failure records."""
    paths = submitit.core.utils.JobPaths(slurm_folder(out_dir) / "%j", job_id=job_id)
    for path in (paths.stderr, paths.stdout):
        try:
            text = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            continue
        if text:
            return " | ".join(text[-lines:])
    return ""


def record_unfinished(spec: RunSpec, out_dir: Path, state: str, job_id: str) -> RunRecord:
    """A ``failed`` record for a run whose job ended without writing one."""
    paths = submitit.core.utils.JobPaths(slurm_folder(out_dir) / "%j", job_id=job_id)
    tail = job_log_tail(out_dir, job_id)
    record = RunRecord.for_spec(
        spec, status="failed", slurm_state=state, job_id=job_id, log=str(paths.stdout),
        error=f"Slurm job {job_id} ended {state} before the run finished"
              + (f"; log: {tail}" if tail else ""))
    write_record(out_dir, record)
    return record


@dataclass(frozen=True)
class SlurmLauncher:
    """Submit RunSpecs as one job array and follow them (launch configuration is data)."""

    config: SlurmConfig
    progress: bool = True
    poll_s: float = 2.0

    def submit(self, specs: list[RunSpec], out_dir: Path, command: str | None = None
               ) -> dict[str, submitit.SlurmJob]:
        folder = slurm_folder(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        executor = submitit.SlurmExecutor(folder=folder / "%j",
                                          max_num_timeout=self.config.max_requeues,
                                          python=self.config.python or sys.executable)
        executor.update_parameters(job_name=f"bench-{Path(out_dir).name}",
                                   **self.config.executor_parameters())
        with executor.batch():
            submitted = [executor.submit(SweepJob(s.to_dict(), str(out_dir), command))
                         for s in specs]
        registry = load_jobs(out_dir)
        jobs = {}
        for spec, job in zip(specs, submitted):
            entry = registry.setdefault(spec.run_id, {"attempts": []})
            entry["job_id"] = job.job_id
            entry["attempts"].append(job.job_id)
            jobs[spec.run_id] = job
        _save_jobs(out_dir, registry)
        log.info("submitted %d task(s) as Slurm job %s", len(specs),
                 submitted[0].job_id.split("_")[0] if submitted else "-")
        return jobs

    def follow(self, specs: Iterable[RunSpec], jobs: dict[str, submitit.SlurmJob],
               out_dir: Path, timeout_s: float | None = None) -> dict[str, str]:
        """Poll until every job has ended; returns ``{run_id: final state}``."""
        specs = {s.run_id: s for s in specs if s.run_id in jobs}
        final: dict[str, str] = {}
        bar = tqdm(total=len(specs), desc="slurm", disable=not self.progress)
        start = time.monotonic()
        while len(final) < len(specs):
            states = self.poll({rid: jobs[rid] for rid in specs if rid not in final})
            for rid, state in states.items():
                kind = classify(state)
                if kind in ("queued", "running", "unknown"):
                    continue
                final[rid] = self._settle(specs[rid], jobs[rid], state, kind, out_dir)
                bar.update()
            counts = Counter(classify(s) for s in states.values() if classify(s) in
                             ("queued", "running"))
            counts.update(final.values())
            bar.set_postfix({k: v for k, v in counts.items() if v}, refresh=True)
            if len(final) < len(specs):
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    break
                time.sleep(self.poll_s)
        bar.close()
        return final

    @staticmethod
    def poll(jobs: dict[str, submitit.SlurmJob]) -> dict[str, str]:
        """One sacct call for all jobs (submitit's watcher), then each job's state."""
        if not jobs:
            return {}
        first = next(iter(jobs.values()))
        first.watcher.update_if_long_enough(mode="force")
        return {rid: job.watcher.get_state(job.job_id, mode="cache") for rid, job in jobs.items()}

    @staticmethod
    def _settle(spec: RunSpec, job: submitit.SlurmJob, state: str, kind: str, out_dir: Path
                ) -> str:
        try:
            rec = load_record(record_path(out_dir, spec.run_id))
        except CorruptRecordError as exc:
            log.warning("%s; recording how the job ended instead", exc)
            rec = None
        if rec is not None and rec.job_id == job.job_id:
            # this job wrote its record: it knows best (a traceback beats a Slurm state)
            return "done" if rec.ok else "failed"
        if kind == "done":
            state, kind = "COMPLETED without writing a record", "failed"
        record_unfinished(spec, out_dir, state, job.job_id)
        return kind
