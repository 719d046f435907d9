"""A fake Slurm cluster for the launcher tests and small helpers to submit runs to it and to
write the records its jobs would write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scaleqbench.bench.launch.api import SchedulerUnavailable, Submission
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.launch.slurm import SlurmLauncher
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.launch.sweep import save_sweep


@dataclass
class FakeSlurm:
    """A cluster in memory: job states the test sets, a controller that can go down, and a hook
    that moves the world before each poll answers."""

    jobs: dict[str, str] = field(default_factory=dict)
    down: bool = False
    before_poll: Callable[[int], None] | None = None
    polls: int = 0
    arrays: int = 100
    submitted: list = field(default_factory=list)
    cancelled: list = field(default_factory=list)

    def submit(self, jobs, folder, config, name):
        ids = [f"{self.arrays}_{i}" for i in range(len(jobs))]
        self.arrays += 1
        self.jobs.update(dict.fromkeys(ids, "PENDING"))
        self.submitted.append((ids, list(jobs), config, name))
        return ids

    def cancel(self, job_ids):
        self.cancelled += list(job_ids)
        self.jobs.update(dict.fromkeys(job_ids, "CANCELLED by 0"))

    def states(self, job_ids):
        self.polls += 1
        if self.before_poll is not None:
            self.before_poll(self.polls)
        if self.down:
            raise SchedulerUnavailable("the Slurm controller does not answer (fake)")
        return {j: self.jobs.get(j, "UNKNOWN") for j in job_ids}


def spec(seed: int = 0, method: str = "cnn") -> RunSpec:
    return RunSpec(method, seed=seed, epochs=1, limit_train=40, limit_eval=20, eq_images=4,
                   experiment="exp")


def job_writes(out: Path, s: RunSpec, job_id: str, status: str = "ok", **extra) -> bool:
    """What a task's SweepJob does at its end: write its record through the guard."""
    rec = RunRecord.for_spec(s, status=status, job_id=job_id, **{"test_acc": 0.5, **extra})
    return RunStore(out).write_job(rec)


def launcher(fake: FakeSlurm) -> SlurmLauncher:
    return SlurmLauncher(progress=False, poll_s=0, scheduler=fake)


def submit(fake: FakeSlurm, out: Path, specs: list[RunSpec]) -> Submission:
    save_sweep(out, specs, launcher="slurm")
    return launcher(fake).submit(specs, out)
