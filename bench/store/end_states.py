"""Slurm's job states in the launcher interface's words (``launch_api.STATES``).

Kept apart from :mod:`bench.slurm` (submitit, the cluster) because two readers
need it: the Slurm launcher, for the states ``sacct`` reports, and the record
schema's migration of schema-1 records, whose ``slurm_state`` field holds the
state in which Slurm ended a job (:mod:`bench.record`).
"""

from __future__ import annotations

__all__ = ["classify"]

_QUEUED = {"PENDING", "REQUEUED", "CONFIGURING", "PREEMPTED", "RESIZING", "SUSPENDED",
           "REQUEUE_HOLD", "REQUEUE_FED", "READY"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
_FAILED = {"FAILED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "INTERRUPTED"}
_ENDED_AS = {"COMPLETED": "done", "CANCELLED": "cancelled", "TIMEOUT": "timed out",
             "NODE_FAIL": "node failed"}


def classify(slurm_state: str | None) -> str:
    """Map a Slurm/sacct state (``'CANCELLED by 0'``...) onto one of launch_api.STATES."""
    word = (slurm_state or "UNKNOWN").split()[0].upper().rstrip("+")
    if word in _QUEUED:
        return "queued"
    if word in _RUNNING:
        return "running"
    if word in _ENDED_AS:
        return _ENDED_AS[word]
    if word in _FAILED:
        return "failed"
    return "unknown"
