"""Why a Slurm job is still pending, and whether it can ever start as it was submitted.

Slurm gives every pending job a *reason* (``squeue -o %r``); the scheduler
(:mod:`.slurm_scheduler`) appends it to the job's state: ``PENDING (Resources)``.
Most reasons pass by themselves (``Priority``, ``Resources``, ``QOSGrp*``: other jobs
end), but some say that the request itself can never be met by the cluster as it is
configured. Slurm documents every reason at
https://slurm.schedmd.com/job_reason_codes.html; :func:`never_starts` knows those
that the page describes as the request against a limit or a configuration, rather than
against the cluster's current load or state:

- ``PartitionConfig`` (no node of the partition has what one task asks for, e.g.
  ``--cpus-per-job 64`` on 2-CPU nodes), ``PartitionTimeLimit`` (``--time`` over the
  partition's limit), ``BadConstraints`` (the constraints cannot be satisfied);
- ``InvalidAccount``, ``InvalidQOS``, ``AccountNotAllowed``, ``QOSNotAllowed``;
- ``QOSMax*PerJob*`` and ``AssocMax*PerJob*`` (one job asks for more than the QOS or the
  association allows any job), ``QOSMin*`` (less than the QOS's minimum);
- ``DependencyNeverSatisfied``.

Left out on purpose: ``ReqNodeNotAvail`` and ``PartitionNodeLimit``, which the same page
says can also mean nodes that are down or drained (they come back);
``PartitionDown`` and ``PartitionInactive`` (an administrator brings a partition up);
limits on how many jobs run at once (``QOSMaxJobsPerUser*``, ``AssocMaxJobsLimit``,
``Max*PerAccount``: the user's other jobs end); holds (``JobHeld*``: released by hand).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scaleqbench.bench.store.end_states import classify

__all__ = ["Blocked", "never_starts", "pending_reason", "progress", "status_detail"]

_PENDING = re.compile(r"^PENDING \((?P<reason>.+)\)$")

_RESOURCES = ("ask for at most what one node of the partition has (--cpus-per-job, --mem, "
              "--gpus-per-job; `sinfo -o '%P %c %m %G'` lists them), or another --partition")
_LIMITS = ("ask for less per task (--cpus-per-job, --mem, --gpus-per-job, --time) than the "
           "limit allows (`sacctmgr show qos`, `sacctmgr show assoc user=$USER`), or pass "
           "another --qos or --account")

#: reason -> (what it means, what to change)
_NEVER: dict[str, tuple[str, str]] = {
    "PartitionConfig": ("no node of the partition has what each task asks for", _RESOURCES),
    "PartitionTimeLimit": ("--time is over the partition's time limit",
                           "lower --time to the partition's limit (`sinfo -o '%P %l'`), or "
                           "pass another --partition"),
    "BadConstraints": ("no node satisfies the job's constraints",
                       "change --constraint (`sinfo -o '%N %f'` lists node features)"),
    "InvalidAccount": ("the job's account is invalid",
                       "pass an account you belong to with --account"),
    "InvalidQOS": ("the job's QOS is invalid", "pass a QOS you may use with --qos"),
    "AccountNotAllowed": ("the account may not use the partition",
                          "pass another --account or --partition"),
    "QOSNotAllowed": ("the QOS may not be used in the partition",
                      "pass another --qos or --partition"),
    "DependencyNeverSatisfied": ("its dependency will never be satisfied",
                                 "remove the dependency from sbatch_extra"),
}


@dataclass(frozen=True)
class Blocked:
    """A pending job that can never start as submitted: Slurm's reason, what it means, and
    what to change."""

    reason: str
    means: str
    change: str

    def line(self, jobs: Iterable[str]) -> str:
        """One line naming the job(s), the reason and what to change."""
        jobs = sorted(jobs, key=_in_order)
        which = (f"Slurm job {jobs[0]}" if len(jobs) == 1
                 else f"Slurm jobs {', '.join(jobs)}" if len(jobs) <= 3
                 else f"Slurm jobs {jobs[0]} ... {jobs[-1]} ({len(jobs)} tasks)")
        return (f"{which} can never start as submitted: pending for {self.reason} "
                f"({self.means}); {self.change}")


def _in_order(job_id: str) -> tuple:
    """``12_10`` after ``12_9``: array tasks in their numeric order."""
    return tuple(int(p) if p.isdigit() else p for p in job_id.split("_"))


def pending_reason(state: str) -> str:
    """Slurm's reason in a pending job's state (``PENDING (Resources)``); "" when none."""
    found = _PENDING.match((state or "").strip())
    return found["reason"].strip() if found else ""


def never_starts(state: str) -> Blocked | None:
    """How the pending job whose state is ``state`` can never start as submitted (see the
    module docstring); None when it may still start (or is not pending)."""
    reason = pending_reason(state)
    word = reason.split(",")[0].strip()  # e.g. "ReqNodeNotAvail, UnavailableNodes:n1"
    if word in _NEVER:
        return Blocked(word, *_NEVER[word])
    per_job = word.startswith(("QOSMax", "AssocMax")) and "PerJob" in word
    if per_job:
        by = "QOS" if word.startswith("QOS") else "association"
        return Blocked(word, f"one task asks for more than the {by} allows any job", _LIMITS)
    if word.startswith("QOSMin"):
        return Blocked(word, "one task asks for less than the QOS's minimum",
                       "ask for at least that minimum per task (`sacctmgr show qos`), or "
                       "pass another --qos")
    return None


def status_detail(job_id: str, said: str) -> str:
    """What ``bench status`` says of a job: Slurm's words, and for a task that can never
    start as submitted, why and what to do."""
    blocked = never_starts(said)
    if blocked is None:
        return said
    return (f"{blocked.line([job_id])}; cancel it (`scancel {job_id}`) and run again with "
            "that changed")


def progress(live: Mapping[str, str], final: Mapping[str, str]) -> dict[str, object]:
    """The follower's progress: how many runs are in each state, and why the queued ones
    wait (Slurm's reasons)."""
    counts = Counter(classify(s) if s != "no answer" else s for s in live.values())
    counts += Counter(final.values())
    shown: dict[str, object] = {k: v for k, v in counts.items() if v}
    reasons = sorted({r for s in live.values() if (r := pending_reason(s))})
    if reasons:
        shown["waiting for"] = ",".join(reasons)
    return shown
