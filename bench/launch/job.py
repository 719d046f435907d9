"""The unit of work every launcher runs: a checkpointable job around ``run_one``.

A job is a pure function of its frozen spec (stored as its JSON data,
:meth:`~scaleqbench.bench.spec.RunSpec.to_json`, so that it pickles across machines and
versions). Through submitit's ``Checkpointable`` interface a job that is preempted or
reaches its time limit is requeued with the same spec; ``run_one`` then resumes from
the last per-epoch checkpoint. A job writes its record through
:meth:`~scaleqbench.bench.store.run_store.RunStore.write_job`: once its launcher has
recorded it as ended (cancelled, timed out...), a job that still finishes does not
replace that record, and a job that no longer owns its run (a newer launch submitted
another job for it) neither trains nor writes: :func:`owns` checks at its start, under
the run's lock, and ``write_job`` again right before the write.

A run computed here without a job (the local launcher) takes the run over from any
job submitted for it earlier, and holds the run's *computing* lock while it runs
(:func:`~scaleqbench.bench.store.locks.computing`), so that ``bench status`` shows it
running, with this process's id.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import submitit
import torch

from scaleqbench.bench.run.cpu_memory import tune_cpu_allocator
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.run.train import run_one
from scaleqbench.bench.store.locks import computing, run_lock
from scaleqbench.bench.store.ownership import not_owner, take_over

__all__ = ["SweepJob", "job_context", "owns", "running_here"]

log = logging.getLogger(__name__)


def _use_allocated_cpus() -> None:
    """Under Slurm, use as many threads as CPUs allocated to the task.

    torch defaults to every core of the node, which oversubscribes a shared node and
    makes results depend on the node's size (reduction order follows the thread count);
    with ``--cpus-per-job`` the thread count, and so the arithmetic, is the launch's.
    """
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit() and int(cpus) > 0:
        torch.set_num_threads(int(cpus))


def _job_context() -> dict:
    """Where this job runs and logs, when it runs under submitit (empty in-process)."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:
        return {}
    return {"job_id": env.job_id, "log": str(env.paths.stdout), "log_err": str(env.paths.stderr),
            "hostname": env.hostname,
            "slurm_restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0"))}


def job_context() -> dict:
    """:func:`_job_context` (the name the task of several runs, :mod:`.task`, calls)."""
    return _job_context()


def owns(out_dir: str | Path, run_id: str, job_id: str) -> bool:
    """Whether the job ``job_id`` owns the run
    (:func:`~scaleqbench.bench.store.ownership.not_owner`), so that it may compute it; when
    not, one line says so, naming the run's owner."""
    with run_lock(Path(out_dir), run_id):
        why = not_owner(out_dir, run_id, job_id)
    if why:
        log.warning("run %s: %s; this task leaves it alone (nothing trained, nothing written)",
                    run_id, why)
    return not why


@contextlib.contextmanager
def running_here(out_dir: str | Path, run_id: str) -> Iterator[None]:
    """Around a run computed without a job: it takes the run over from earlier jobs and
    holds its computing lock (see the module docstring)."""
    take_over(out_dir, run_id)
    with computing(Path(out_dir), run_id):
        yield


class SweepJob(submitit.helpers.Checkpointable):
    """``SweepJob(spec, out_dir)()`` trains and evaluates one run and returns a summary."""

    def __init__(self, spec: RunSpec, out_dir: str | Path, command: str | None = None):
        self.spec, self.out_dir, self.command = spec.to_json(), str(out_dir), command

    def __call__(self, progress: bool = False) -> dict:
        spec = RunSpec.from_json(self.spec)
        tune_cpu_allocator()  # the job entry point opts in (a no-op when already done)
        context = _job_context()
        if context:  # a submitit job: compute with the CPUs the launch allocated
            _use_allocated_cpus()
        if context.get("job_id") and not owns(self.out_dir, spec.run_id, context["job_id"]):
            return {"run_id": spec.run_id, "status": None}
        if self.command:
            context["command"] = self.command
        with (running_here(self.out_dir, spec.run_id) if not context.get("job_id")
              else contextlib.nullcontext()):
            record = run_one(spec, Path(self.out_dir), progress=progress, context=context)
        return {"run_id": record.run_id, "status": record.status}
