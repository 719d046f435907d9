"""Runs in processes of their own: one run per fresh interpreter, several at once when asked.

A run of a local GPU sweep runs in a fresh process, so that a CUDA error that
poisons a process (a device-side assert, an illegal address) ends that run only;
a Slurm task with ``--runs-per-job K`` runs its K runs as K processes sharing its
GPU(s) (:mod:`.task`). Each process runs :mod:`.worker`, which is ``run_one`` on
one spec: it writes the run's record and per-epoch checkpoints exactly as a run
in this process would.

A process that ends without writing its record (killed by the kernel, a crash in
native code) gets a ``failed`` record saying how it ended, with the last lines of
its log; a process this module stopped (the task is being requeued, the user
pressed Ctrl-C) gets none: its run is not over.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaleqbench.bench.launch.sweep import log_tail
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore

__all__ = ["RunProcess", "run_pool", "stop_all", "worker_argv"]

log = logging.getLogger(__name__)

#: seconds a stopped run gets to leave before it is killed
STOP_GRACE_S = 30.0

# the processes started here and not yet ended: a requeue signal stops them (module state,
# not a task's: a task is pickled when it is requeued, and processes do not pickle)
_RUNNING: dict[int, subprocess.Popen] = {}


def worker_argv() -> list[str]:
    """The command that runs one run (:mod:`.worker`), with this interpreter."""
    return [sys.executable, "-m", "scaleqbench.bench.launch.worker"]


@dataclass
class RunProcess:
    """What a run in a process of its own is given: its spec, where it writes, the record
    facts of its job, and its environment."""

    spec: RunSpec
    out_dir: Path
    context: Mapping[str, Any] = field(default_factory=dict)  # record fields (job id, logs)
    env: Mapping[str, str] = field(default_factory=dict)  # added to this process's
    threads: int | None = None  # torch's intra-op threads (None: torch's default)
    slurm: bool = False  # leaves Slurm's signals to the task that started it
    progress: bool = False
    log_file: Path | None = None  # stdout and stderr (None: this process's own)

    def payload(self) -> str:
        return json.dumps({"spec": self.spec.to_json(), "out_dir": str(self.out_dir),
                           "context": dict(self.context), "threads": self.threads,
                           "slurm": self.slurm, "progress": self.progress})

    def start(self) -> subprocess.Popen:
        out = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log_file, "ab")  # noqa: SIM115 - the child holds it
        env = {**os.environ, **self.env}
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        try:
            proc = subprocess.Popen(worker_argv(), stdin=subprocess.PIPE, stdout=out,
                                    stderr=subprocess.STDOUT if out else None, env=env)
        finally:
            if out is not None:
                out.close()
        _RUNNING[proc.pid] = proc
        try:
            proc.stdin.write(self.payload().encode())
            proc.stdin.close()
        except BrokenPipeError:  # it died at once: settle() says how
            pass
        return proc

    def record_before(self) -> bytes | None:
        try:
            return RunStore(self.out_dir).path(self.spec.run_id).read_bytes()
        except OSError:
            return None

    def settle(self, returncode: int, before: bytes | None) -> None:
        """After the process ended with ``returncode``: when it wrote no record, write a
        ``failed`` one that says how it ended."""
        if returncode == 0 or self.record_before() not in (None, before):
            return  # it wrote its record (ok, failed, or refused by a settled launcher)
        how = (f"was killed by {signal.Signals(-returncode).name}" if returncode < 0
               else f"exited with status {returncode}")
        tail = log_tail([str(self.log_file)]) if self.log_file else ""
        error = (f"the run's process {how} before writing its record"
                 + (f"; log: {tail}" if tail else ""))
        log.warning("run %s (%s seed %d): %s", self.spec.run_id, self.spec.label,
                    self.spec.seed, error)
        RunStore(self.out_dir).write_job(RunRecord.for_spec(self.spec, **dict(self.context),
                                                            error=error))


def stop_all(grace_s: float = STOP_GRACE_S) -> None:
    """Stop every run process still going (SIGINT: the run ends without a record, its
    per-epoch checkpoint stays), killing those that do not leave within ``grace_s``."""
    procs = [p for p in list(_RUNNING.values()) if p.poll() is None]
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    end = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _RUNNING.clear()


def run_pool(runs: Sequence[RunProcess], slots: int,
             gpus: Sequence[str] = (), stopped: Callable[[], bool] = lambda: False,
             poll_s: float = 0.2) -> None:
    """Run ``runs`` with at most ``slots`` at once, in order; with ``gpus`` (their
    ``CUDA_VISIBLE_DEVICES`` ids) each run gets the one fewest running runs use. Returns
    when all have ended, or at once when ``stopped()`` (the processes still going are
    stopped without records)."""
    queue, running = list(runs), {}
    try:
        while (queue or running) and not stopped():
            while queue and len(running) < max(1, slots):
                run = queue.pop(0)
                if gpus:
                    load = {g: 0 for g in gpus}
                    for _, _, g in running.values():
                        load[g] += 1
                    gpu = min(gpus, key=lambda g: load[g])
                    run.env = {**run.env, "CUDA_VISIBLE_DEVICES": gpu}
                else:
                    gpu = ""
                before = run.record_before()
                running[run.start()] = (run, before, gpu)
            for proc in [p for p in running if p.poll() is not None]:
                run, before, _ = running.pop(proc)
                _RUNNING.pop(proc.pid, None)
                if not stopped():
                    run.settle(proc.returncode, before)
            time.sleep(poll_s)
    finally:
        if running:
            stop_all()
