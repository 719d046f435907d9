"""The Slurm launcher: a sweep becomes one job array, followed until every task ends.

Each pending RunSpec is one array task running
:class:`~scaleqbench.bench.launch.job.SweepJob`;
with ``--runs-per-job K`` (or several GPUs per task) a task runs K of them at once,
each in a process of its own (:class:`~scaleqbench.bench.launch.task.SweepTask`), and
all K share the task's job id. Logs and submitit's pickles live in
``<experiment>/slurm/``; ``jobs.json`` there maps run ids to their job ids, so
``bench status`` and ``bench collect`` can find the jobs later (``--detach``).

A spec's ``--device auto`` is decided at submission: CUDA when the tasks ask for GPUs,
the CPU when they do not (a node that does not hide other jobs' GPUs would otherwise
give a GPU-less task somebody else's GPU 0).

Following: a record that a run's job wrote settles the run, whatever Slurm says
(so runs settle even while the controller is down). A task that Slurm ends
without a record (cancelled, timed out past its requeues, node failure) is
settled with a ``failed`` record saying so, which that task can no longer
replace (:meth:`~scaleqbench.bench.store.run_store.RunStore.settle`). When the controller stops answering, the
follower says so once and goes on from the records. A task pending for a reason that
Slurm documents as one the job can never get past (:mod:`.slurm_pending`: it asks for
more CPUs than a node has...) is cancelled by the follower, which says so in one line
with what to change, and recorded as ``cancelled``: nothing would ever end it otherwise.
``bench status`` shows each pending task's reason, and that line.

``jobs.json`` also says which job *owns* each run
(:mod:`~scaleqbench.bench.store.ownership`): a task of an earlier
submission that Slurm requeued by itself exits without training or writing.

Everything that talks to the cluster sits behind
:class:`~scaleqbench.bench.launch.slurm_scheduler.SlurmScheduler`
(:class:`~scaleqbench.bench.launch.slurm_scheduler.SubmititScheduler` on a real
cluster, a fake in the tests).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import submitit
from tqdm.auto import tqdm

from scaleqbench.bench.errors import BadArgumentError
from scaleqbench.bench.launch.api import ENDED, RunState, SchedulerUnavailable, Submission
from scaleqbench.bench.store.ownership import load_jobs, note_submitted
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore, unfinished_record
from scaleqbench.bench.launch.slurm_config import FIELDS, SlurmConfig, config_of_options
from scaleqbench.bench.launch.slurm_pending import Blocked, never_starts, progress, status_detail
from scaleqbench.bench.launch.slurm_scheduler import SlurmScheduler, SubmititScheduler
from scaleqbench.bench.store.end_states import classify
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.launch.sweep import log_tail

__all__ = ["SlurmLauncher", "classify", "job_logs"]

log = logging.getLogger(__name__)


def slurm_folder(out_dir: Path) -> Path:
    return Path(out_dir) / "slurm"


def job_logs(out_dir: Path, job_id: str) -> tuple[str, str]:
    """A task's (stderr, stdout) log files, where submitit writes them."""
    paths = submitit.core.utils.JobPaths(slurm_folder(out_dir) / "%j", job_id=job_id)
    return str(paths.stderr), str(paths.stdout)


@dataclass(frozen=True)
class SlurmLauncher:
    """Submit RunSpecs as one job array and follow them (launch configuration is data)."""

    name: ClassVar[str] = "slurm"
    accepts: ClassVar[frozenset[str]] = frozenset({*FIELDS, "launcher_config", "detach"})
    interrupt_hint: ClassVar[str] = "jobs keep running on the cluster; see `bench status {out}`"

    config: SlurmConfig = SlurmConfig()
    progress: bool = True
    poll_s: float = 2.0
    scheduler: SlurmScheduler = field(default_factory=SubmititScheduler)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], progress: bool) -> SlurmLauncher:
        config = config_of_options(dict(options))
        missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
        if missing:
            raise BadArgumentError(f"--launcher slurm needs Slurm's {' and '.join(missing)} on "
                                   "PATH (run bench on a login node), or use --launcher local")
        return cls(config, progress=progress)

    def submit(self, specs: list[RunSpec], out_dir: Path, command: str | None = None
               ) -> Submission:
        specs = list(specs)
        if not specs:
            return Submission((), {}, "no task to submit")
        folder = slurm_folder(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        specs = [self._on_task_device(s) for s in specs]
        groups = self._groups(specs)
        job_ids = self.scheduler.submit(self._jobs(groups, out_dir, command), folder,
                                        self.config, f"bench-{Path(out_dir).name}")
        by_run = {s.run_id: j for group, j in zip(groups, job_ids) for s in group}
        note_submitted(out_dir, {spec.run_id: by_run[spec.run_id] for spec in specs})
        arrays = sorted({j.split("_")[0] for j in job_ids})
        runs = f" ({len(specs)} runs)" if len(groups) != len(specs) else ""
        summary = f"submitted {len(groups)} task(s){runs} as Slurm job {', '.join(arrays)}"
        log.info("%s", summary)
        return Submission(tuple(specs), by_run, summary)

    def _on_task_device(self, spec: RunSpec) -> RunSpec:
        """``spec`` with ``--device auto`` decided for a task: CUDA when it gets GPUs."""
        if spec.device != "auto":
            return spec
        return RunSpec.from_json({**spec.to_json(), "device": "cuda" if self.config.gpus
                                  else "cpu"})

    def _groups(self, specs: list[RunSpec]) -> list[list[RunSpec]]:
        """The runs of each array task: ``runs_per_job`` consecutive specs."""
        k = self.config.runs_per_job
        return [specs[i:i + k] for i in range(0, len(specs), k)]

    def _jobs(self, groups: list[list[RunSpec]], out_dir: Path, command: str | None) -> list:
        """What each array task runs: one run as itself, several (or several GPUs) as a task
        of processes."""
        # imported here: a job loads torch, which the parser (the --launcher choices) never needs
        from scaleqbench.bench.launch.job import SweepJob
        from scaleqbench.bench.launch.task import SweepTask

        if self.config.runs_per_job == 1 and self.config.gpus <= 1:
            return [SweepJob(group[0], out_dir, command) for group in groups]
        return [SweepTask(group, out_dir, self.config.runs_per_job, self.config.gpus, command)
                for group in groups]

    def follow(self, submission: Submission, out_dir: Path, timeout_s: float | None = None
               ) -> dict[str, str]:
        """Poll until every task has ended (or can never start, :meth:`_give_up`); returns
        ``{run_id: final state}``."""
        jobs: Mapping[str, str] = submission.jobs
        specs = {s.run_id: s for s in submission.specs if s.run_id in jobs}
        final: dict[str, str] = {}
        store = RunStore(out_dir)
        answering = True
        bar = tqdm(total=len(specs), desc="slurm", disable=not self.progress)
        start = time.monotonic()
        try:
            while True:
                for rid in [r for r in specs if r not in final]:
                    record = store.current(rid)
                    if record is not None and record.job_id == jobs[rid]:  # its job wrote it
                        final[rid] = record.outcome
                        bar.update()
                left = {rid: jobs[rid] for rid in specs if rid not in final}
                live: dict[str, str] = {}  # run id -> Slurm's state of a job still out there
                try:
                    raw = self.scheduler.states(left.values()) if left else {}
                except SchedulerUnavailable as exc:
                    live = dict.fromkeys(left, "no answer")
                    if answering:
                        log.warning("%s; following the runs from their records in %s until "
                                    "it answers again", exc, Path(out_dir) / "runs")
                    answering = False
                else:
                    if not answering:
                        log.warning("Slurm answers again; following the jobs")
                    answering = True
                    for rid, job_id in left.items():
                        state = raw.get(job_id, "UNKNOWN")
                        kind = classify(state)
                        if kind in ENDED:
                            final[rid] = self._settle(specs[rid], job_id, state, kind,
                                                      out_dir).outcome
                            bar.update()
                        else:
                            live[rid] = state
                    given_up = self._give_up({r: (left[r], live[r]) for r in live}, specs,
                                             out_dir)
                    final.update(given_up)
                    bar.update(len(given_up))
                    live = {r: st for r, st in live.items() if r not in given_up}
                bar.set_postfix(progress(live, final), refresh=True)
                if len(final) == len(specs):
                    break
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    break
                time.sleep(self.poll_s)
        finally:
            bar.close()
        return final

    def _give_up(self, waiting: Mapping[str, tuple[str, str]], specs: Mapping[str, RunSpec],
                 out_dir: Path) -> dict[str, str]:
        """Cancel the tasks among ``waiting`` (``{run_id: (job_id, state)}``) that can never
        start as submitted (:func:`never_starts`), saying so in one line per reason, and
        record their runs ``cancelled``; returns ``{run_id: outcome}`` of those."""
        blocked = {rid: (job, state, b) for rid, (job, state) in waiting.items()
                   if (b := never_starts(state)) is not None}
        if not blocked:
            return {}
        jobs = sorted({job for job, _, _ in blocked.values()})
        try:
            self.scheduler.cancel(jobs)
            failed = ""
        except SchedulerUnavailable as exc:
            failed = str(exc)

        def done(its_jobs: set[str]) -> str:
            it = "it" if len(its_jobs) == 1 else "them"
            if not failed:
                return f"bench cancelled {it}; run again with that changed"
            return (f"bench could not cancel {it} ({failed}): cancel {it} with `scancel "
                    f"{' '.join(sorted(its_jobs))}`")

        by_reason: dict[Blocked, set[str]] = {}
        for job, _, b in blocked.values():
            by_reason.setdefault(b, set()).add(job)
        for b, its_jobs in by_reason.items():
            log.warning("%s; %s", b.line(its_jobs), done(its_jobs))
        final = {}
        for rid, (job, state, b) in blocked.items():
            record = unfinished_record(
                specs[rid], launcher=self.name, job_id=job, end_state="cancelled",
                backend_state=state, log_file=job_logs(out_dir, job)[1],
                error=f"{b.line([job])}; {done({job})}")
            final[rid] = RunStore(out_dir).settle(specs[rid], job, record).outcome
        return final

    def _settle(self, spec: RunSpec, job_id: str, state: str, kind: str, out_dir: Path
                ) -> RunRecord:
        """A ``failed`` record for a task that Slurm ended, unless its own record is there."""
        if kind == "done":
            state, kind = "COMPLETED without writing a record", "failed"
        stderr, stdout = job_logs(out_dir, job_id)
        tail = log_tail((stderr, stdout))
        record = unfinished_record(
            spec, launcher=self.name, job_id=job_id, end_state=kind, backend_state=state,
            log_file=stdout, error=f"Slurm job {job_id} ended {state} before the run finished"
                                   + (f"; log: {tail}" if tail else ""))
        return RunStore(out_dir).settle(spec, job_id, record)

    def _latest_jobs(self, out_dir: Path, specs: Iterable[RunSpec]) -> dict[str, str]:
        jobs = load_jobs(out_dir)
        return {s.run_id: jobs[s.run_id]["job_id"] for s in specs if s.run_id in jobs}

    def states(self, out_dir: Path, specs: Iterable[RunSpec]) -> dict[str, RunState]:
        latest = self._latest_jobs(out_dir, specs)
        if not latest:
            return {}
        try:
            raw, problem = self.scheduler.states(latest.values()), ""
        except SchedulerUnavailable as exc:
            raw, problem = {}, str(exc)
        return {rid: RunState(job=job_id,
                              state=classify(raw[job_id]) if job_id in raw else "unknown",
                              detail=status_detail(job_id, raw.get(job_id) or problem),
                              logs=job_logs(out_dir, job_id))
                for rid, job_id in latest.items()}

    def settle(self, out_dir: Path, specs: Iterable[RunSpec]) -> int:
        """Record the runs whose latest task ended without a record; returns how many."""
        specs = list(specs)
        by_id = {s.run_id: s for s in specs}
        todo, store = {}, RunStore(out_dir)
        for rid, job_id in self._latest_jobs(out_dir, specs).items():
            record = store.current(rid)  # a damaged one is replaced, and named, below
            if record is None or not (record.ok or record.job_id == job_id):
                todo[rid] = job_id
        if not todo:
            return 0
        try:
            raw = self.scheduler.states(todo.values())
        except SchedulerUnavailable as exc:
            log.warning("cannot settle %d Slurm task(s) now: %s", len(todo), exc)
            return 0
        settled = 0
        for rid, job_id in todo.items():
            state = raw.get(job_id, "UNKNOWN")
            kind = classify(state)
            if kind in ENDED:
                record = self._settle(by_id[rid], job_id, state, kind, out_dir)
                settled += record.settled_by == self.name and record.job_id == job_id
        return settled

