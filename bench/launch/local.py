"""The local launcher: each pending run here, one after the other.

It runs the same :class:`~scaleqbench.bench.launch.job.SweepJob` that a Slurm array task runs
(:class:`~scaleqbench.bench.launch.slurm.SlurmLauncher`); both implement
:class:`~scaleqbench.bench.launch.api.Launcher`. A run on a GPU runs in a fresh process
of its own (:mod:`.processes`): a CUDA error that leaves a process unable to use its GPU
(a device-side assert, an illegal address) then fails that run only, and the sweep goes
on. A run on the CPU runs in this process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from scaleqbench.bench.launch.api import RunState, Submission
from scaleqbench.bench.launch.processes import RunProcess, run_pool
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.run_store import RunStore

__all__ = ["LocalLauncher"]


@dataclass(frozen=True)
class LocalLauncher:
    """Run jobs here, one after the other (each GPU run in a fresh process of its own).

    ``submit`` only prepares the jobs; ``follow`` runs them (nothing runs behind the
    command's back, so there is nothing to detach from, to ask about or to settle).
    """

    name: ClassVar[str] = "local"
    accepts: ClassVar[frozenset[str]] = frozenset()
    interrupt_hint: ClassVar[str] = "finished records are kept in {out}/runs"

    progress: bool = True
    #: whether each run gets a fresh process: None, those that compute on a GPU
    isolate: bool | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], progress: bool) -> LocalLauncher:
        return cls(progress=progress)

    def submit(self, specs: list[RunSpec], out_dir: Path, command: str | None = None
               ) -> Submission:
        # imported here: a job loads torch, which the parser (the --launcher choices) never needs
        from scaleqbench.bench.launch.job import SweepJob

        jobs = {s.run_id: SweepJob(s, out_dir, command) for s in specs}
        return Submission(tuple(specs), jobs, f"{len(jobs)} run(s) to run in this process")

    def follow(self, submission: Submission, out_dir: Path) -> dict[str, str]:
        final, store = {}, RunStore(out_dir)
        specs = submission.specs
        for spec in tqdm(specs, desc="sweep", disable=not self.progress or len(specs) < 2):
            if self._isolated(spec):
                job = submission.jobs[spec.run_id]
                context = {"command": job.command} if job.command else {}
                run_pool([RunProcess(spec, out_dir, context, progress=self.progress)], 1)
            else:
                submission.jobs[spec.run_id](progress=self.progress)
            record = store.current(spec.run_id)
            final[spec.run_id] = record.outcome if record is not None else "failed"
        return final

    def _isolated(self, spec: RunSpec) -> bool:
        if self.isolate is not None:
            return self.isolate
        from scaleqbench.bench.run.devices import resolve_device

        return resolve_device(spec.device).type == "cuda"

    def states(self, out_dir: Path, specs: Iterable[RunSpec]) -> dict[str, RunState]:
        return {}

    def settle(self, out_dir: Path, specs: Iterable[RunSpec]) -> int:
        return 0
