"""The Slurm cluster as the Slurm launcher sees it: submit a job array, ask for job states.

Submission goes through submitit (``sbatch`` with submitit's pickles, so a job
can checkpoint and requeue itself); states come from ``sacct``, after
``scontrol ping`` has said that the controller answers, and for a job that ``sacct``
says is pending (or does not list yet), from ``squeue``, which adds Slurm's reason for
the wait (``PENDING (Resources)``; see :mod:`.slurm_pending`). ``sacct`` reads the
accounting database, which keeps answering while the controller is down, but
then with states frozen at the moment the controller stopped: a job would look
``RUNNING`` for ever. So a silent controller is :class:`SchedulerUnavailable`,
and the launcher follows the runs from their records until it answers again.

This is the only module that runs Slurm commands; tests replace it with a fake
(:class:`SlurmScheduler` is the interface).
"""

from __future__ import annotations

import contextlib
import io
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.slurm.slurm import SlurmInfoWatcher

from scaleqbench.bench.errors import LauncherError
from scaleqbench.bench.launch.api import SchedulerUnavailable
from scaleqbench.bench.launch.slurm_config import SlurmConfig

__all__ = ["SlurmScheduler", "SubmititScheduler"]


class SlurmScheduler(Protocol):
    """What the launcher asks of a Slurm cluster."""

    def submit(self, jobs: Sequence[Callable[[], object]], folder: Path, config: SlurmConfig,
               name: str) -> list[str]:
        """Submit the jobs as one array; their job ids (raises LauncherError)."""

    def states(self, job_ids: Iterable[str]) -> dict[str, str]:
        """``{job_id: Slurm state}``, a pending job's with its reason (``PENDING
        (Resources)``); raises SchedulerUnavailable when Slurm cannot say."""

    def cancel(self, job_ids: Iterable[str]) -> None:
        """Cancel the jobs; raises SchedulerUnavailable when Slurm cannot."""


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [""])[-1]


@dataclass(frozen=True)
class SubmititScheduler:
    """Slurm through submitit, ``sacct`` and ``scontrol``."""

    timeout_s: float = 60.0  # one Slurm command; a busy controller may take seconds

    def submit(self, jobs: Sequence[Callable[[], object]], folder: Path, config: SlurmConfig,
               name: str) -> list[str]:
        """Submit ``jobs`` as one array (one job when there is one); their Slurm job ids."""
        executor = submitit.SlurmExecutor(folder=Path(folder) / "%j",
                                          max_num_timeout=config.max_requeues,
                                          python=config.python or shlex.quote(sys.executable))
        executor.update_parameters(job_name=name, **config.executor_parameters())
        # submitit prints sbatch's complaint on stderr before raising it: keep it for our line
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said), executor.batch():
                submitted = [executor.submit(job) for job in jobs]
        except (FailedJobError, FailedSubmissionError, OSError) as exc:
            why = _last_line(str(exc)) or _last_line(said.getvalue()) or type(exc).__name__
            raise LauncherError(f"Slurm did not take the job array ({why}); check the "
                                "cluster with `sinfo`, or run with --launcher local") from None
        return [job.job_id for job in submitted]

    def _run(self, argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise SchedulerUnavailable(f"{argv[0]} is not installed here") from None
        except subprocess.TimeoutExpired:
            raise SchedulerUnavailable(f"`{' '.join(argv[:2])}` took over "
                                       f"{self.timeout_s:.0f} s") from None
        if done.returncode != 0:
            raise SchedulerUnavailable(f"`{' '.join(argv[:2])}` failed: "
                                       f"{_last_line(done.stderr + done.stdout) or done.returncode}")
        return done.stdout

    def controller_answers(self) -> None:
        """Return when the Slurm controller answers; else raise SchedulerUnavailable."""
        try:
            text = self._run(["scontrol", "ping"])
        except SchedulerUnavailable as exc:
            raise SchedulerUnavailable(f"the Slurm controller does not answer ({exc})") from None
        if " is UP" not in text:  # a backup controller that is UP will do
            raise SchedulerUnavailable("the Slurm controller does not answer "
                                       f"({_last_line(text) or 'scontrol ping: no answer'})")

    def states(self, job_ids: Iterable[str]) -> dict[str, str]:
        """``{job_id: Slurm state}`` (``UNKNOWN`` for a job sacct does not list yet)."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        self.controller_answers()
        arrays = sorted({j.split("_")[0] for j in ids})
        text = self._run(["sacct", "-o", "JobID,State", "--parsable2", "-j", ",".join(arrays)])
        # submitit's parser: it expands array ranges ("12_[3-5%2]") into one entry per task
        info = SlurmInfoWatcher().read_info(text)
        states = {j: info.get(j, {}).get("State") or "UNKNOWN" for j in ids}
        waiting = [j for j, state in states.items() if state in ("PENDING", "UNKNOWN")]
        states.update(self._queued(waiting))
        return states

    def _queued(self, job_ids: list[str]) -> dict[str, str]:
        """What the controller's queue says of ``job_ids``: ``PENDING (reason)``, or another
        state (sacct may lag behind); {} when ``squeue`` cannot say (sacct's word stands)."""
        if not job_ids:
            return {}
        arrays = sorted({j.split("_")[0] for j in job_ids})
        try:  # -r: one line per array task, even for the tasks still pending as one record
            text = self._run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(arrays)])
        except SchedulerUnavailable:
            return {}
        found = {}
        for line in text.splitlines():
            job, _, rest = line.strip().partition("|")
            state, _, reason = rest.partition("|")
            if job in job_ids and state:
                reason = reason.strip()
                found[job] = (f"{state} ({reason})" if state == "PENDING" and reason
                              and reason != "None" else state)
        return found

    def cancel(self, job_ids: Iterable[str]) -> None:
        """Cancel the jobs (``scancel``); raises SchedulerUnavailable when Slurm refuses."""
        ids = sorted(set(job_ids))
        if ids:
            self._run(["scancel", *ids])
