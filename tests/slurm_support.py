"""The real Slurm cluster for the ``-m slurm`` tests: the module-scoped autouse fixture that
skips (or, with SCALEQBENCH_REQUIRE_SLURM=1, fails) without a cluster, ``bench`` run in
this process, and helpers that wait for and read job states and pause runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch.sweep import sweep_status
from scaleqbench.bench.run.pause import PAUSE_AFTER_EPOCH, PAUSE_DIR


def _cluster_up() -> str | None:
    if shutil.which("sinfo") is None:
        return "Slurm is not installed here (no sinfo)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed: {exc}"
    # "comp": the node is finishing an earlier test's job (a cancelled task within KillWait);
    # it is up and takes new jobs as soon as that one has ended
    if out.returncode != 0 or not {"idle", "mix", "alloc", "comp"} & set(out.stdout.split()):
        return f"no Slurm node is up (sinfo: {out.stdout.strip() or out.stderr.strip()})"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    reason = _cluster_up()
    if reason:
        if os.environ.get("SCALEQBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"SCALEQBENCH_REQUIRE_SLURM=1 but {reason}; start it with "
                        "tests/slurm/slurm-up.sh")
        pytest.skip(reason)


# one CPU per job: the jobs then compute with one thread, as the tests do (conftest), so
# Slurm and local runs of the same spec do the same arithmetic
TINY = ["--limit-train", "100", "--limit-eval", "40", "--epochs", "1", "--quiet", "--no-report"]


SLURM = ["--launcher", "slurm", "--time", "10", "--cpus-per-job", "1"]


def bench(*argv: str) -> int:
    return cli.main(list(argv))


def board(out: Path) -> pd.DataFrame:
    df = pd.read_csv(out / "leaderboard.csv")
    return df.sort_values("method").reset_index(drop=True)


def wait_for(predicate, timeout: float, what: str, poll: float = 1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def job_alive(job_id: str) -> bool:
    """Whether Slurm still lists the job (pending, running or requeued) in its queue."""
    done = subprocess.run(["squeue", "-h", "-j", job_id.split("_")[0], "-o", "%i"],
                          capture_output=True, text=True, timeout=30)
    return bool(done.stdout.strip())


def wait_for_job(predicate, job_id: str, what: str, grace: float = 60.0,
                 cap: float = 3600.0, poll: float = 1.0):
    """Wait for ``predicate`` while the job it depends on is in Slurm's queue: the event
    waited for is the job's own progress, however slow the machine is. Fails when the job
    has left the queue ``grace`` seconds without ``predicate`` holding, or after ``cap``
    seconds (only a safety net against a job that never ends)."""
    gone_since = None

    def ready():
        nonlocal gone_since
        value = predicate()
        if value or job_alive(job_id):
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since > grace:
            raise AssertionError(f"job {job_id} left the queue without {what}")
        return value

    return wait_for(ready, cap, what, poll)


def state_of(out: Path, method: str) -> str:
    return next(r["state"] for r in sweep_status(out) if r["method"] == method)


@pytest.fixture()
def pause(tmp_path, monkeypatch):
    """Jobs submitted in the test stop after epoch 1 until the test releases them
    (bench/run/pause.py): the test causes what it waits for instead of racing the job. Every
    paused run is released at the end, so no job lingers into the next test."""
    folder = tmp_path / "pause"
    monkeypatch.setenv(PAUSE_DIR, str(folder))
    monkeypatch.setenv(PAUSE_AFTER_EPOCH, "1")
    yield folder
    release(folder)


def paused(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.paused"))


def release(folder: Path, run_ids: list[str] | None = None) -> None:
    for run_id in run_ids if run_ids is not None else paused(folder):
        (folder / f"{run_id}.release").touch()
