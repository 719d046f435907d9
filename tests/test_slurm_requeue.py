"""Requeued and interrupted jobs on a real Slurm cluster (``-m slurm``): a job signalled for
requeue resumes from its checkpoint, a task cancelled near its end cannot replace its
settled record, the follower goes on while the controller is down, and a task of four runs
is requeued whole.

Without Slurm these tests skip with a reason, unless SCALEQBENCH_REQUIRE_SLURM=1
(CI), where a missing cluster is a failure.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scaleqbench.bench.store.checkpoint import last_checkpoint_path
from scaleqbench.bench.launch.sweep import sweep_status
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.launch.slurm import job_logs
from scaleqbench.bench.store.ownership import load_jobs

# pause, slurm_cluster (module-scoped, autouse): fixtures, found by pytest under these names
from slurm_support import (
    bench, pause, paused, release, SLURM, slurm_cluster, state_of, wait_for, wait_for_job)

# the waits follow the jobs' own progress (wait_for_job); this is only a safety net
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(1800)]


@pytest.fixture()
def release_requeued_jobs():
    """Slurm makes a requeued job wait ~2 minutes (its begin time) before it may start again;
    on a real cluster that is noise, in a test it is most of the wall time. An admin (the
    test runs as root against its own cluster) may move the begin time to now."""
    stop = threading.Event()

    def loop():
        while not stop.wait(2.0):
            out = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%A %r"],
                                 capture_output=True, text=True).stdout
            for line in out.splitlines():
                job, _, reason = line.partition(" ")
                if reason.strip() == "BeginTime":
                    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                                   capture_output=True)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_a_job_signalled_for_requeue_resumes_from_its_checkpoint(tmp_path, cache_dir, pause,
                                                                release_requeued_jobs):
    """Slurm's time-limit signal (USR2, ``--signal-delay-s`` before the limit) makes submitit
    checkpoint the task and requeue it; training resumes from the last per-epoch checkpoint.
    The test sends that signal itself while the run is paused after epoch 1, so it does not
    depend on how many epochs the machine trains before a time limit."""
    out = tmp_path / "exp"
    assert bench("run", "--methods", "cnn", "--epochs", "3", "--limit-train", "300",
                 "--limit-eval", "40", "--quiet", "--no-report", "--cache-dir", str(cache_dir),
                 "--out", str(out), *SLURM, "--detach") == 0
    (run_id, entry), = load_jobs(out).items()
    wait_for_job(lambda: paused(pause), entry["job_id"],
                 "the job to finish its first epoch and pause")
    assert last_checkpoint_path(out, run_id).exists()
    subprocess.run(["scancel", "--signal=USR2", entry["job_id"]], check=True)
    wait_for_job(lambda: RunStore(out).path(run_id).exists(), entry["job_id"],
                 "the requeued job's record")
    rec = RunStore(out).scan()[0][0]
    assert rec.ok, rec.error
    assert rec.slurm_restarts >= 1 and rec.resumed_from_epoch == 1
    assert [h["epoch"] for h in rec.history] == [1, 2, 3]
    requeues = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j",
                               rec.job_id], capture_output=True, text=True).stdout
    # Slurm's accounting, not only the job's own counter, shows the requeue: one row per
    # attempt (-D), oldest first, every one but the last REQUEUED (or PREEMPTED); the last one
    # wrote the record, so it may still be finishing
    rows = requeues.split()
    assert len(rows) >= 2 and set(rows[:-1]) <= {"REQUEUED", "PREEMPTED"}, rows
    assert rows[-1] in ("RUNNING", "COMPLETING", "COMPLETED"), rows
    assert json.loads((out / "slurm" / "jobs.json").read_text())


def test_a_task_cancelled_near_its_end_cannot_replace_its_settled_record(tmp_path, cache_dir,
                                                                         pause):
    """submitit ignores the first SIGTERM, so a task that scancel hits keeps training until
    Slurm kills it (KillWait); one that ends before then must not replace the record that
    says it was cancelled (the leaderboard was written from it). The task is paused after
    epoch 1 and released only once the cancellation is settled: it then ends, and gives way."""
    out = tmp_path / "exp"
    assert bench("run", "--methods", "cnn", "--epochs", "2", "--limit-train", "300",
                 "--limit-eval", "40", "--quiet", "--no-report", "--cache-dir", str(cache_dir),
                 "--out", str(out), *SLURM, "--detach") == 0
    (run_id, entry), = load_jobs(out).items()
    wait_for(lambda: paused(pause), 180, "the job to finish its first epoch and pause")
    subprocess.run(["scancel", entry["job_id"]], check=True)
    wait_for(lambda: state_of(out, "cnn") == "cancelled", 60, "the cancellation")
    assert bench("collect", str(out)) == 0
    settled = RunStore(out).path(run_id).read_text()
    assert '"end_state": "cancelled"' in settled
    release(pause)  # one epoch of 300 images is left: far inside KillWait (slurm-up.sh)
    stderr = Path(job_logs(out, entry["job_id"])[0])
    wait_for(lambda: "this result is dropped" in stderr.read_text(errors="replace"), 90,
             "the cancelled task to finish and give way")
    assert RunStore(out).path(run_id).read_text() == settled


@pytest.fixture()
def restart_controller():
    """The test stops slurmctld; start it again whatever happened (slurm-up.sh starts only
    the daemons that are not running)."""
    pidfile = Path(os.environ.get("SLURM_CI_DIR", "/tmp/slurm-ci")) / "slurmctld.pid"
    pid = int(pidfile.read_text())
    yield pidfile
    # a controller that got SIGTERM saves its state before it exits: slurm-up.sh would take it
    # for a running one (its pid is alive) and then time out waiting for it to answer
    end = time.monotonic() + 120
    while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
        time.sleep(0.5)
    for attempt in (1, 2):
        up = subprocess.run(["bash", str(Path(__file__).parent / "slurm" / "slurm-up.sh")],
                            capture_output=True, text=True)
        if up.returncode == 0:
            return
    raise AssertionError(f"slurm-up.sh could not restart the cluster:\n{up.stdout}{up.stderr}")


def test_the_follower_warns_once_and_follows_records_while_the_controller_is_down(
        tmp_path, cache_dir, restart_controller, caplog, pause):
    """With slurmctld killed, sacct keeps saying RUNNING; bench run says once that the
    controller is silent and ends when the records are there. Both tasks are paused after
    epoch 1 while the controller goes down, and released once the follower has noticed."""
    out = tmp_path / "exp"
    result: list[int] = []
    args = ["run", "--methods", "cnn", "--seeds", "0,1", "--epochs", "2", "--limit-train",
            "300", "--limit-eval", "40", "--quiet", "--no-report", "--cache-dir",
            str(cache_dir), "--out", str(out), *SLURM]
    follower = threading.Thread(target=lambda: result.append(bench(*args)), daemon=True)
    with caplog.at_level(logging.WARNING, logger="scaleqbench.bench.launch.slurm"):
        follower.start()
        wait_for(lambda: len(paused(pause)) == 2, 240, "both tasks to pause after epoch 1")
        assert not RunStore(out).scan()[0], "a task ended before the kill"
        os.kill(int(restart_controller.read_text()), 15)
        wait_for(lambda: any("does not answer" in r.getMessage() for r in caplog.records), 60,
                 "the follower to notice the silent controller")
        release(pause)
        wait_for(lambda: len([r for r in RunStore(out).scan()[0] if r.ok]) == 2, 300,
                 "both records")
        follower.join(30)  # a few polls, not until the controller is back
        assert not follower.is_alive(), "bench run still follows runs that have records"
    assert result == [0]
    silent = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(silent) == 1


def test_a_task_of_four_runs_is_requeued_whole_and_resumes_all_four(tmp_path, cache_dir, pause,
                                                                   release_requeued_jobs):
    """``--runs-per-job 4``: one array task runs four runs at once, each in a process of its own
    with its own record, log and per-epoch checkpoint. The test sends the requeue signal while
    all four are paused after epoch 1: the task stops them (no record: their runs are not over)
    and is requeued whole, and its next attempt resumes all four from their checkpoints."""
    out = tmp_path / "exp"
    assert bench("run", "--methods", "cnn", "--seeds", "0-3", "--epochs", "2",
                 "--limit-train", "300", "--limit-eval", "40", "--quiet", "--no-report",
                 "--cache-dir", str(cache_dir), "--out", str(out), *SLURM,
                 "--runs-per-job", "4", "--detach") == 0
    jobs = load_jobs(out)
    assert len(jobs) == 4 and len({e["job_id"] for e in jobs.values()}) == 1
    job_id = next(iter(jobs.values()))["job_id"]
    wait_for_job(lambda: len(paused(pause)) == 4, job_id,
                 "all four runs to finish epoch 1 and pause")
    assert sorted(paused(pause)) == sorted(jobs)
    assert all(last_checkpoint_path(out, run_id).exists() for run_id in jobs)
    assert not RunStore(out).scan()[0], "a run ended before the signal"
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_for_job(lambda: all(RunStore(out).path(run_id).exists() for run_id in jobs), job_id,
                 "the requeued task's four records")
    recs = RunStore(out).scan()[0]
    assert sorted(r.run_id for r in recs) == sorted(jobs)
    for rec in recs:
        assert rec.ok, rec.error
        assert rec.job_id == job_id and rec.slurm_restarts >= 1 and rec.resumed_from_epoch == 1
        assert [h["epoch"] for h in rec.history] == [1, 2]
    assert len({rec.log for rec in recs}) == 4
    assert not any(last_checkpoint_path(out, run_id).exists() for run_id in jobs)
    assert all(state == "done" for state in (r["state"] for r in sweep_status(out)))
