"""Sweeps on a real Slurm cluster through submitit (``-m slurm``; `make test` starts the cluster).

Without Slurm these tests skip with a reason, unless SCALEQBENCH_REQUIRE_SLURM=1
(CI), where a missing cluster is a failure.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.store.checkpoint import last_checkpoint_path
from scaleqbench.bench.launch.sweep import sweep_status
from scaleqbench.bench.run.pause import PAUSE_AFTER_EPOCH, PAUSE_DIR
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.launch.slurm import job_logs, load_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]


def _cluster_up() -> str | None:
    if shutil.which("sinfo") is None:
        return "Slurm is not installed here (no sinfo)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed: {exc}"
    if out.returncode != 0 or not {"idle", "mix", "alloc"} & set(out.stdout.split()):
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


def state_of(out: Path, method: str) -> str:
    return next(r["state"] for r in sweep_status(out) if r["method"] == method)


def test_array_sweep_matches_a_local_run(tmp_path, cache_dir, capsys):
    args = ["--methods", "cnn,timm:resnet18", "--seeds", "0,1", *TINY,
            "--cache-dir", str(cache_dir)]
    t0 = time.perf_counter()
    assert bench("run", *args, "--out", str(tmp_path / "exp"), *SLURM) == 0
    slurm_s = time.perf_counter() - t0
    jobs = load_jobs(tmp_path / "exp")
    assert len(jobs) == 4 and len({j["job_id"].split("_")[0] for j in jobs.values()}) == 1
    t0 = time.perf_counter()
    assert bench("run", *args, "--out", str(tmp_path / "exp")) == 0  # resumes: nothing to do
    assert "4 already done" in capsys.readouterr().out
    local = tmp_path / "local" / "exp"  # same experiment name: the same run ids
    assert bench("run", *args, "--out", str(local)) == 0
    local_s = time.perf_counter() - t0
    print(f"\nwall time: slurm {slurm_s:.1f} s, local {local_s:.1f} s")
    a, b = board(tmp_path / "exp"), board(local)
    assert list(a.method) == list(b.method) == ["cnn", "timm:resnet18"]
    for col in ("params", "test_acc_mean", "test_acc_std", "scale_consistency", "eq_err",
                "logit_inv_err"):
        assert a[col].tolist() == pytest.approx(b[col].tolist(), rel=1e-4, abs=1e-6), col
    recs = RunStore(tmp_path / "exp").scan()[0]
    assert all(r.job_id and Path(r.log).parent.parent == tmp_path / "exp" / "slurm"
               for r in recs)


def test_a_failing_task_is_recorded_and_only_it_is_resubmitted(tmp_path, cache_dir, capsys):
    out = tmp_path / "exp"
    # builds and classifies at 28 px (bench run's trial build passes it), then meets a 13 px
    # batch in training: the task fails inside the job
    args = ["run", "--methods", "cnn,fourier[min_size=20]", *TINY, "--cache-dir", str(cache_dir),
            "--out", str(out), *SLURM]
    assert bench(*args) == 1  # one run failed: the exit status says so
    recs = {r.method: r for r in RunStore(out).scan()[0]}
    bad = recs["fourier[min_size=20]"]
    assert recs["cnn"].ok and bad.status == "failed"
    assert "Traceback" in bad.error and bad.log.endswith("_log.out")
    capsys.readouterr()
    assert bench("status", str(out)) == 0
    status = capsys.readouterr().out
    assert "1 done, 1 failed" in status and "accepts sizes" in status
    first = load_jobs(out)
    assert bench(*args) == 1  # retries the failed run only, which fails again: exit 1
    again = load_jobs(out)
    good_id = recs["cnn"].run_id
    assert again[good_id]["attempts"] == first[good_id]["attempts"]
    assert len(again[bad.run_id]["attempts"]) == 2


def test_detach_status_collect_give_the_same_leaderboard(tmp_path, cache_dir, capsys):
    out = tmp_path / "exp"
    args = ["--methods", "cnn", "--seeds", "0,1", *TINY, "--cache-dir", str(cache_dir)]
    assert bench("run", *args, "--out", str(out), *SLURM, "--detach") == 0
    assert "bench status" in capsys.readouterr().out
    assert not (out / "leaderboard.csv").exists()
    wait_for(lambda: all(r["state"] == "done" for r in sweep_status(out)), 240, "both runs")
    assert bench("status", str(out)) == 0
    assert "2 done" in capsys.readouterr().out
    assert bench("collect", str(out)) == 0
    local = tmp_path / "local" / "exp"
    assert bench("run", *args, "--out", str(local)) == 0
    a, b = board(out), board(local)
    assert a.test_acc_mean.tolist() == pytest.approx(b.test_acc_mean.tolist(), abs=1e-6)
    assert a.eq_err.tolist() == pytest.approx(b.eq_err.tolist(), rel=1e-4)


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


def test_a_cancelled_job_is_reported_cancelled(tmp_path, cache_dir, capsys, pause):
    out = tmp_path / "exp"
    assert bench("run", "--methods", "cnn", "--epochs", "3", "--limit-train", "300",
                 "--limit-eval", "40", "--quiet", "--cache-dir", str(cache_dir), "--out",
                 str(out), *SLURM, "--detach") == 0
    wait_for(lambda: paused(pause), 180, "the job to finish its first epoch and pause")
    assert state_of(out, "cnn") == "running"
    job_id = next(iter(load_jobs(out).values()))["job_id"]
    subprocess.run(["scancel", job_id], check=True)
    wait_for(lambda: state_of(out, "cnn") == "cancelled", 120, "the cancellation")
    assert bench("collect", str(out)) == 0
    rec = RunStore(out).scan()[0][0]
    assert rec.status == "failed" and rec.backend_state.startswith("CANCELLED")
    assert rec.end_state == "cancelled" and rec.settled_by == "slurm"
    capsys.readouterr()
    assert bench("status", str(out)) == 0
    assert "1 cancelled" in capsys.readouterr().out


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
    wait_for(lambda: paused(pause), 180, "the job to finish its first epoch and pause")
    assert last_checkpoint_path(out, run_id).exists()
    subprocess.run(["scancel", "--signal=USR2", entry["job_id"]], check=True)
    wait_for(lambda: RunStore(out).path(run_id).exists(), 300, "the requeued job's record")
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
    wait_for(lambda: len(paused(pause)) == 4, 300, "all four runs to finish epoch 1 and pause")
    assert sorted(paused(pause)) == sorted(jobs)
    assert all(last_checkpoint_path(out, run_id).exists() for run_id in jobs)
    assert not RunStore(out).scan()[0], "a run ended before the signal"
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_for(lambda: all(RunStore(out).path(run_id).exists() for run_id in jobs), 420,
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
