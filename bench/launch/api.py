"""The launcher interface: what every backend that runs a sweep's jobs implements.

A launcher takes the pending RunSpecs of a sweep and runs each one as a
:class:`~scaleqbench.bench.launch.job.SweepJob` somewhere (this process, a Slurm array,
...). ``bench run``, ``bench status`` and ``bench collect`` only talk to this
interface, so another backend (another scheduler, a multi-GPU node) is one new
class registered in :data:`scaleqbench.bench.launch.registry.LAUNCHERS`:

- ``submit(specs, out_dir, command) -> Submission`` hands the jobs over;
- ``follow(submission, out_dir) -> {run_id: final state}`` waits until every
  job has ended and leaves a record for each (a launcher writes a ``failed``
  record for a job that ended without one);
- ``states(out_dir, specs) -> {run_id: RunState}`` says what the backend knows
  of the runs it launched (for ``bench status`` and resuming);
- ``settle(out_dir, specs) -> int`` records runs whose jobs ended without a
  record (``bench collect`` after ``--detach``).

Launch configuration is data: a launcher is a frozen dataclass, built from the
``bench run`` options it accepts by ``from_options``, and constructible with no
arguments to look at a sweep it launched earlier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from scaleqbench.bench.spec import RunSpec

__all__ = ["ACTIVE", "ENDED", "Launcher", "RunState", "STATES", "SchedulerUnavailable",
           "Submission"]

#: what ``bench status`` shows, in display order (``corrupt record``: the run's record file
#: cannot be read; ``bench run`` moves it aside and recomputes the run)
STATES = ("queued", "running", "done", "failed", "cancelled", "timed out", "node failed",
          "corrupt record", "not submitted", "unknown")
#: states of a job that has not ended yet
ACTIVE = ("queued", "running")
#: states of a job that has ended (``done`` only with a record)
ENDED = ("done", "failed", "cancelled", "timed out", "node failed")


class SchedulerUnavailable(RuntimeError):
    """The backend cannot say what its jobs are doing (controller down, no ``sacct``...)."""


@dataclass(frozen=True)
class RunState:
    """What a launcher knows of one run: its latest job, that job's state, and its logs."""

    job: str = ""  # the backend's id of the run's latest job ("" when it has none)
    state: str = ""  # one of STATES, "" when the launcher knows nothing of the run
    detail: str = ""  # the backend's own words (e.g. Slurm's ``CANCELLED by 0``)
    logs: tuple[str, ...] = ()  # the job's log files, most telling first (stderr, stdout)


@dataclass(frozen=True, eq=False)
class Submission:
    """The jobs a launcher was handed: one handle per run id, and a line saying where they went."""

    specs: tuple[RunSpec, ...]
    jobs: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""


class Launcher(Protocol):
    """Runs the jobs of a sweep (see the module docstring)."""

    #: the ``--launcher`` name
    name: ClassVar[str]
    #: the ``bench run`` options this launcher takes (others are refused, not ignored)
    accepts: ClassVar[frozenset[str]]
    #: what happens to the jobs when ``bench run`` is interrupted (``{out}`` is the folder)
    interrupt_hint: ClassVar[str]

    @classmethod
    def from_options(cls, options: Mapping[str, Any], progress: bool) -> Launcher: ...

    def submit(self, specs: list[RunSpec], out_dir: Path, command: str | None = None
               ) -> Submission: ...

    def follow(self, submission: Submission, out_dir: Path) -> dict[str, str]: ...

    def states(self, out_dir: Path, specs: Iterable[RunSpec]) -> dict[str, RunState]: ...

    def settle(self, out_dir: Path, specs: Iterable[RunSpec]) -> int: ...
