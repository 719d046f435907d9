"""Slurm tasks against a fake cluster: the device a task's GPUs decide, several runs per task
(each in its own process with its own record, settled and resumed together) and local GPU
runs in a fresh process each.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from scaleqbench.bench.launch import processes
from scaleqbench.bench.launch import task as task_module
from scaleqbench.bench.launch.slurm_config import SlurmConfig
from scaleqbench.bench.launch.task import SweepTask
from scaleqbench.bench.run.pause import PAUSE_AFTER_EPOCH, PAUSE_DIR
from scaleqbench.bench.store.checkpoint import last_checkpoint_path
from scaleqbench.bench.launch.local import LocalLauncher
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.launch.slurm import SlurmLauncher
from scaleqbench.bench.store.ownership import load_jobs
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.launch.sweep import save_sweep

from launcher_support import FakeSlurm, job_writes, spec


# --- GPUs and several runs per task ----------------------------------------------------------

def slurm_launcher(fake: FakeSlurm, **config) -> SlurmLauncher:
    return SlurmLauncher(SlurmConfig(**config), progress=False, poll_s=0, scheduler=fake)


@pytest.mark.parametrize("config, device", [({}, "cpu"), ({"gpus_per_job": 1}, "cuda"),
                                            ({"gres": "gpu:a100:1"}, "cuda")])
def test_device_auto_is_decided_by_the_gpus_a_task_gets(tmp_path, config, device):
    """A task without GPUs computes on the CPU even on a node whose GPUs it can see (one
    that does not hide the GPUs of other jobs); with GPUs, auto is CUDA."""
    fake = FakeSlurm()
    sub = slurm_launcher(fake, **config).submit([spec(0), RunSpec("cnn", device="cpu")],
                                                tmp_path)
    jobs = fake.submitted[0][1]
    assert [RunSpec.from_json(j.spec).device for j in jobs] == [device, "cpu"]
    assert set(sub.jobs) == {spec(0).run_id, RunSpec("cnn").run_id}  # the same runs


def test_runs_per_job_puts_k_runs_in_each_task(tmp_path):
    fake, specs = FakeSlurm(), [spec(i) for i in range(5)]
    sub = slurm_launcher(fake, runs_per_job=2).submit(specs, tmp_path)
    tasks = fake.submitted[0][1]
    assert [type(t) for t in tasks] == [SweepTask] * 3
    assert [[RunSpec.from_json(d).seed for d in t.specs] for t in tasks] == [[0, 1], [2, 3], [4]]
    assert sub.summary == "submitted 3 task(s) (5 runs) as Slurm job 100"
    assert [sub.jobs[s.run_id] for s in specs] == ["100_0", "100_0", "100_1", "100_1", "100_2"]
    assert {rid: e["job_id"] for rid, e in load_jobs(tmp_path).items()} == dict(sub.jobs)


def test_a_task_of_runs_that_ends_without_records_settles_each(tmp_path):
    fake, specs = FakeSlurm(), [spec(i) for i in range(3)]
    save_sweep(tmp_path, specs, launcher="slurm")
    slurm = slurm_launcher(fake, runs_per_job=3)
    sub = slurm.submit(specs, tmp_path)
    fake.before_poll = lambda poll: poll == 1 and (
        job_writes(tmp_path, specs[0], "100_0"), fake.jobs.update({"100_0": "TIMEOUT"}))
    assert slurm.follow(sub, tmp_path) == {specs[0].run_id: "done",
                                           specs[1].run_id: "timed out",
                                           specs[2].run_id: "timed out"}
    assert RunStore(tmp_path).current(specs[1].run_id).job_id == "100_0"


def _task_context(tmp_path: Path, job_id: str = "100_0", restarts: int = 0) -> dict:
    log = tmp_path / "slurm" / job_id / f"{job_id}_0_log.out"
    return {"job_id": job_id, "log": str(log), "log_err": str(log), "hostname": "node1",
            "slurm_restarts": restarts}


def test_a_task_runs_its_runs_in_processes_each_with_its_own_record(tmp_path, cache_dir,
                                                                    monkeypatch):
    """``--runs-per-job 2``: one task, two processes, two records written with the task's
    job id (so the follower settles both from them), two logs. A run whose process dies
    without its record (killed by the kernel, a crash in native code) gets a failed record
    saying how; the other run goes on."""
    fake = FakeSlurm()
    specs = [RunSpec("cnn", seed=i, epochs=1, limit_train=40, limit_eval=20, eq_images=4,
                     experiment="exp", cache_dir=str(cache_dir)) for i in (0, 1)]
    save_sweep(tmp_path, specs, launcher="slurm")
    slurm = slurm_launcher(fake, runs_per_job=2)
    sub = slurm.submit(specs, tmp_path)
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    starts = iter([crash, processes.worker_argv()])
    monkeypatch.setattr(processes, "worker_argv", lambda: next(starts))
    monkeypatch.setattr(task_module, "job_context", lambda: _task_context(tmp_path))
    assert [s["status"] for s in fake.submitted[0][1][0]()] == ["failed", "ok"]
    fake.jobs["100_0"] = "COMPLETED"
    assert slurm.follow(sub, tmp_path) == {specs[0].run_id: "failed", specs[1].run_id: "done"}
    dead, done = (RunStore(tmp_path).current(s.run_id) for s in specs)
    assert dead.job_id == done.job_id == "100_0" and not dead.settled_by
    assert "the run's process was killed by SIGKILL before writing its record" in dead.error
    assert done.device_kind == "cpu" and done.spec.device == "cpu"  # auto, decided at submission
    assert dead.log != done.log and Path(done.log).exists()


def test_a_requeued_task_resumes_all_its_runs(tmp_path, cache_dir, monkeypatch):
    """Slurm's requeue signal makes submitit call the task's checkpoint(): the runs still going
    stop without records (their per-epoch checkpoints stay) and the whole task is requeued;
    its next attempt resumes every run. The runs are paused after epoch 1 (bench/run/pause.py)
    when the signal comes, so the test does not race them."""
    pause = tmp_path / "pause"
    monkeypatch.setenv(PAUSE_DIR, str(pause))
    monkeypatch.setenv(PAUSE_AFTER_EPOCH, "1")
    specs = [RunSpec("cnn", seed=i, epochs=2, limit_train=40, limit_eval=20, eq_images=4,
                     experiment="exp", cache_dir=str(cache_dir), device="cpu") for i in (0, 1)]
    monkeypatch.setattr(task_module, "job_context", lambda: _task_context(tmp_path))
    task = SweepTask(specs, tmp_path, runs_per_job=2)
    first = threading.Thread(target=task)
    first.start()
    deadline = time.monotonic() + 180
    while len(list(pause.glob("*.paused"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list(pause.glob("*.paused"))) == 2, "the runs did not reach their pause"
    requeued = task.checkpoint()  # what submitit does on the signal
    first.join(60)
    assert not first.is_alive()
    assert all(RunStore(tmp_path).current(s.run_id) is None for s in specs)  # not over
    assert all(last_checkpoint_path(tmp_path, s.run_id).exists() for s in specs)
    monkeypatch.setattr(task_module, "job_context", lambda: _task_context(tmp_path, restarts=1))
    assert [s["status"] for s in requeued.function(*requeued.args)] == ["ok", "ok"]
    for s in specs:
        rec = RunStore(tmp_path).current(s.run_id)
        assert rec.resumed_from_epoch == 1 and rec.slurm_restarts == 1
        assert [h["epoch"] for h in rec.history] == [1, 2]


def test_local_gpu_runs_run_in_a_fresh_process_each(tmp_path, cache_dir, monkeypatch):
    """A run that kills its process (as a CUDA error that poisons a context would make every
    later run of the process fail) fails alone; the sweep goes on to the next run."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert LocalLauncher()._isolated(RunSpec("cnn"))  # auto: CUDA here, so isolated
    assert not LocalLauncher()._isolated(RunSpec("cnn", device="cpu"))
    specs = [RunSpec("cnn", seed=i, epochs=1, limit_train=40, limit_eval=20, eq_images=4,
                     experiment="exp", cache_dir=str(cache_dir), device="cpu") for i in (0, 1)]
    crash = [sys.executable, "-c", "import os; os.abort()"]
    starts = iter([crash, processes.worker_argv()])
    monkeypatch.setattr(processes, "worker_argv", lambda: next(starts))
    local = LocalLauncher(progress=False, isolate=True)
    final = local.follow(local.submit(specs, tmp_path, "bench run ..."), tmp_path)
    assert final == {specs[0].run_id: "failed", specs[1].run_id: "done"}
    dead = RunStore(tmp_path).current(specs[0].run_id)
    assert "was killed by SIGABRT" in dead.error and dead.command == "bench run ..."
