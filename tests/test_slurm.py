"""Sweeps on a real Slurm cluster through submitit (``-m slurm``; `make test` starts the cluster):
an array sweep matches a local run, failing and cancelled tasks, detach, status and collect.

Without Slurm these tests skip with a reason, unless SCALEQBENCH_REQUIRE_SLURM=1
(CI), where a missing cluster is a failure. (Requeued and restarted jobs:
tests/test_slurm_requeue.py.)
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from scaleqbench.bench.launch.sweep import sweep_status
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.store.ownership import load_jobs

# pause, slurm_cluster (module-scoped, autouse): fixtures, found by pytest under these names
from slurm_support import (
    bench, board, pause, paused, SLURM, slurm_cluster, state_of, TINY, wait_for)


pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]


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
