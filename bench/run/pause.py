"""A pause point in training that tests drive: "stop after epoch k until this file exists".

Tests of a real cluster must cause the events they wait for (a signal, a cancellation, a
controller going down) while a job is known to be mid-run, whatever the machine's speed.
With ``SCALEQBENCH_PAUSE_AFTER_EPOCH=k`` and ``SCALEQBENCH_PAUSE_DIR=DIR`` in a job's
environment (Slurm passes the submitting environment on), a run that has just saved the
state of epoch ``k`` writes ``DIR/<run-id>.paused`` and waits until ``DIR/<run-id>.release``
exists. It pauses once per run: a requeued attempt that passes epoch ``k`` again goes on.

Signals reach the waiting process as usual (the wait is short sleeps in the main thread),
so a Slurm requeue signal or a cancellation acts on a paused run as on a training one.
Without the two variables nothing happens; user runs never set them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["PAUSE_AFTER_EPOCH", "PAUSE_DIR", "pause_point"]

PAUSE_AFTER_EPOCH = "SCALEQBENCH_PAUSE_AFTER_EPOCH"
PAUSE_DIR = "SCALEQBENCH_PAUSE_DIR"


def pause_point(run_id: str, epoch: int, poll_s: float = 0.1) -> None:
    """Wait here after ``epoch`` when the environment asks for it (see the module doc)."""
    when, where = os.environ.get(PAUSE_AFTER_EPOCH), os.environ.get(PAUSE_DIR)
    if not when or not where or int(when) != epoch:
        return
    folder = Path(where)
    paused, release = folder / f"{run_id}.paused", folder / f"{run_id}.release"
    if paused.exists():
        return  # paused once already (an earlier attempt of this run)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = paused.with_suffix(".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, paused)
    while not release.exists():
        time.sleep(poll_s)
