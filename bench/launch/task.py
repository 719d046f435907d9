"""A Slurm task that runs several runs of a sweep at once: ``--runs-per-job K``.

An MNIST-size run uses a sliver of a modern GPU. A :class:`SweepTask` is one array
task holding K runs; it starts each in a process of its own (:mod:`.processes`), all
sharing the task's GPU(s) (with G GPUs, each run gets one, the least used), as many at
once as the memory estimate says fit (:func:`runs_at_once`). Each run writes its own
record and per-epoch checkpoint, exactly as a run of its own task would, with the
task's job id, so following, ``bench status`` and ``bench collect`` treat them as
they treat any run (a record its job wrote settles it; a task that ended without
one's record settles it as the task ended). A run that the task no longer owns (a
newer launch submitted another job for it) is left alone.

Requeue: on the time-limit or preemption signal submitit calls :meth:`checkpoint`,
which stops the runs still going (they keep their per-epoch checkpoints and write no
record), and requeues the whole task; the next attempt skips the runs that this job
already recorded and resumes the others from their checkpoints.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import submitit

from scaleqbench.bench.launch.job import job_context, owns
from scaleqbench.bench.launch.processes import RunProcess, run_pool, stop_all
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.run_store import RunStore

__all__ = ["SweepTask", "runs_at_once", "visible_gpus"]

log = logging.getLogger(__name__)

#: share of a device's memory the runs of a task may plan to use together
MEMORY_HEADROOM = 0.8


def visible_gpus(gpus: int) -> list[str]:
    """The ids of the task's GPUs as ``CUDA_VISIBLE_DEVICES`` names them (Slurm sets it to
    those it allocated); ``0 .. gpus-1`` when it is not set."""
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
              if g.strip()]
    return listed[:gpus] if len(listed) >= gpus else [str(i) for i in range(gpus)]


def _free_bytes(gpus: int) -> int | None:
    """Memory one run's device offers: a GPU's total memory (the runs are not started yet),
    or the host's free memory (cgroup limit included) without GPUs."""
    import torch

    from scaleqbench.bench.run.memory_bound import available_bytes

    if gpus:
        try:
            return min(torch.cuda.get_device_properties(i).total_memory
                       for i in range(min(gpus, torch.cuda.device_count())))
        except (RuntimeError, ValueError):  # no CUDA here: the runs will say so themselves
            return None
    return available_bytes(torch.device("cpu"))


def runs_at_once(specs: list[RunSpec], wanted: int, gpus: int) -> int:
    """How many of ``specs`` to run at once: ``wanted`` (at most one per run), fewer when the
    largest run's estimated training step times the runs per device would exceed
    :data:`MEMORY_HEADROOM` of a device's memory; at least one per GPU."""
    from scaleqbench.bench.run.memory_bound import estimate_run_bytes

    slots = max(1, min(wanted, len(specs)))
    free = _free_bytes(gpus)
    needs = [n for n in map(estimate_run_bytes, specs) if n]
    if free is None or not needs:
        return slots
    per_device = max(1, math.floor(MEMORY_HEADROOM * free / max(needs)))
    fit = per_device * max(1, gpus)
    if fit < slots:
        log.warning("running %d of this task's %d runs at once, not %d: each needs about "
                    "%.1f GB, and a device has %.1f GB", fit, len(specs), slots,
                    max(needs) / 2**30, free / 2**30)
    return min(slots, fit)


class SweepTask(submitit.helpers.Checkpointable):
    """``SweepTask(specs, out_dir, runs_per_job, gpus)()`` runs the specs, several at once."""

    def __init__(self, specs: list[RunSpec], out_dir: str | Path, runs_per_job: int,
                 gpus: int = 0, command: str | None = None):
        self.specs = [s.to_json() for s in specs]
        self.out_dir, self.command = str(out_dir), command
        self.runs_per_job, self.gpus = runs_per_job, gpus
        self._stopping = False

    def _todo(self, job_id: str | None) -> list[RunSpec]:
        """The runs this job has not recorded yet (an earlier attempt may have) and still
        owns (:func:`~scaleqbench.bench.launch.job.owns`: a newer launch may have submitted
        another job for one)."""
        store = RunStore(self.out_dir)
        specs = [RunSpec.from_json(d) for d in self.specs]
        done = {s.run_id for s in specs if job_id and (rec := store.current(s.run_id))
                is not None and rec.job_id == job_id}
        return [s for s in specs if s.run_id not in done
                and (not job_id or owns(self.out_dir, s.run_id, job_id))]

    def _process(self, spec: RunSpec, context: dict, threads: int) -> RunProcess:
        folder = Path(context["log"]).parent if context.get("log") else Path(self.out_dir)
        log_file = folder / f"{context.get('job_id', 'local')}_{spec.run_id}_log.out"
        ctx = {**context, "log": str(log_file), "log_err": str(log_file)}
        if self.command:
            ctx["command"] = self.command
        return RunProcess(spec, Path(self.out_dir), ctx, threads=threads, slurm=True,
                          log_file=log_file)

    def __call__(self) -> list[dict]:
        self._stopping = False
        context = job_context()
        todo = self._todo(context.get("job_id"))
        slots = runs_at_once(todo, self.runs_per_job, self.gpus) if todo else 1
        cpus = int(os.environ.get("SLURM_CPUS_PER_TASK") or os.cpu_count() or 1)
        threads = max(1, cpus // slots)
        runs = [self._process(s, context, threads) for s in todo]
        log.info("task %s: %d run(s), %d at once, %d thread(s) each", context.get("job_id"),
                 len(runs), slots, threads)
        run_pool(runs, slots, visible_gpus(self.gpus), stopped=lambda: self._stopping)
        store = RunStore(self.out_dir)
        return [{"run_id": r.spec.run_id,
                 "status": (rec.status if (rec := store.current(r.spec.run_id)) else None)}
                for r in runs]

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Stop the runs still going (each keeps its per-epoch checkpoint) and requeue the
        task: its next attempt resumes them."""
        self._stopping = True  # the requeued attempt starts afresh (__call__)
        stop_all()
        return super().checkpoint(*args, **kwargs)
