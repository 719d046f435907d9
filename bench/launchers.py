"""Launchers by name: the local one, the registry behind ``--launcher NAME``, sweep-wide views.

``LocalLauncher`` runs each pending RunSpec in this process, one after the
other, through the same :class:`~bench.job.SweepJob` that a Slurm array task
runs (:class:`bench.slurm.SlurmLauncher`). Both implement
:class:`bench.launch_api.Launcher`; :data:`LAUNCHERS` maps ``--launcher`` names
to them, so a new backend is one class and one entry here.

A spec whose record already exists with status ``ok`` is skipped, so a sweep
that was interrupted resumes where it stopped; failed runs are retried unless
``retry_failed`` is off. A damaged record is moved aside (never deleted) and its
run recomputed, said in a warning. ``bench status`` and ``bench collect`` ask
every launcher that ``sweep.json`` names about the runs it launched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from scalebench.bench.errors import BadArgumentError, UnknownNameError
from scalebench.bench.launch_api import Launcher, RunState, Submission
from scalebench.bench.records import resume_record
from scalebench.bench.settle import current_record
from scalebench.bench.slurm import SlurmLauncher
from scalebench.bench.spec import RunSpec
from scalebench.bench.sweep import load_sweep, run_states, sweep_launchers

__all__ = ["LAUNCHERS", "LocalLauncher", "make_launcher", "pending", "settle_sweep",
           "sweep_status"]

log = logging.getLogger(__name__)


def pending(specs: list[RunSpec], out_dir: Path, retry_failed: bool = True) -> list[RunSpec]:
    """The specs without an ``ok`` record in ``out_dir`` (and without a failed one, unless
    ``retry_failed``)."""
    todo = []
    for spec in specs:
        rec = resume_record(out_dir, spec.run_id)
        if rec is not None and (rec.ok or not retry_failed):
            log.info("skip %s seed %d: %s record %s exists", spec.label, spec.seed,
                     rec.status, spec.run_id)
            continue
        todo.append(spec)
    return todo


@dataclass(frozen=True)
class LocalLauncher:
    """Run jobs in this process, one after the other.

    ``submit`` only prepares the jobs; ``follow`` runs them (nothing runs behind the
    command's back, so there is nothing to detach from, to ask about or to settle).
    """

    name: ClassVar[str] = "local"
    accepts: ClassVar[frozenset[str]] = frozenset()
    interrupt_hint: ClassVar[str] = "finished records are kept in {out}/runs"

    progress: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any], progress: bool) -> LocalLauncher:
        return cls(progress=progress)

    def submit(self, specs: list[RunSpec], out_dir: Path, command: str | None = None
               ) -> Submission:
        # imported here: a job loads torch, which the parser (the --launcher choices) never needs
        from scalebench.bench.job import SweepJob

        jobs = {s.run_id: SweepJob(s.to_dict(), str(out_dir), command) for s in specs}
        return Submission(tuple(specs), jobs, f"{len(jobs)} run(s) to run in this process")

    def follow(self, submission: Submission, out_dir: Path) -> dict[str, str]:
        final = {}
        specs = submission.specs
        for spec in tqdm(specs, desc="sweep", disable=not self.progress or len(specs) < 2):
            submission.jobs[spec.run_id](progress=self.progress)
            record = current_record(out_dir, spec.run_id)
            final[spec.run_id] = record.outcome if record is not None else "failed"
        return final

    def states(self, out_dir: Path, specs: Iterable[RunSpec]) -> dict[str, RunState]:
        return {}

    def settle(self, out_dir: Path, specs: Iterable[RunSpec]) -> int:
        return 0


#: ``--launcher`` name -> launcher class
LAUNCHERS: dict[str, type[Launcher]] = {cls.name: cls for cls in (LocalLauncher, SlurmLauncher)}


def _given(value: Any) -> bool:
    """Whether an option was given on the command line (0 is a value; None, False, [] are not)."""
    return not (value is None or value is False or
                (isinstance(value, (list, tuple, str)) and not value))


def launcher_class(name: str) -> type[Launcher]:
    try:
        return LAUNCHERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown launcher {name!r}; known: "
                               f"{', '.join(LAUNCHERS)}") from None


def make_launcher(name: str, options: Mapping[str, Any], progress: bool = True) -> Launcher:
    """The launcher ``--launcher name`` asks for, configured from the ``bench run`` options; an
    option this launcher does not take is an error, not silently ignored."""
    cls = launcher_class(name)
    foreign = [k for k, v in options.items() if _given(v) and k not in cls.accepts]
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        owners = [n for n, c in LAUNCHERS.items() if set(foreign) <= c.accepts]
        where = " or ".join(f"--launcher {n}" for n in owners) or "no launcher"
        raise BadArgumentError(f"{flags} only apply to {where} (--launcher {name} does not "
                               f"take them); pass {where} or drop them")
    return cls.from_options({k: v for k, v in options.items() if k in cls.accepts}, progress)


def _launchers_of(out_dir: Path) -> list[Launcher]:
    """A launcher (with defaults) for each that launched runs into the folder; every registered
    one for a sweep that predates that list (each says nothing of runs it did not launch)."""
    names = sweep_launchers(out_dir)
    return [launcher_class(n)() for n in (list(LAUNCHERS) if names is None else names)]


def sweep_status(out_dir: Path, specs: Iterable[RunSpec] | None = None) -> list[dict]:
    """``bench status``: one row per run, from the records and every launcher of the sweep."""
    specs = load_sweep(out_dir) if specs is None else list(specs)
    live: dict[str, RunState] = {}
    for launcher in _launchers_of(out_dir):
        live.update(launcher.states(out_dir, specs))
    return run_states(out_dir, live, specs)


def settle_sweep(out_dir: Path, specs: Iterable[RunSpec] | None = None) -> int:
    """``bench collect``: each launcher of the sweep records the runs whose jobs ended without
    a record; returns how many."""
    specs = load_sweep(out_dir) if specs is None else list(specs)
    return sum(launcher.settle(out_dir, specs) for launcher in _launchers_of(out_dir))
