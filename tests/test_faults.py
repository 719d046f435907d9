"""Issue 13's robustness sweep, injected faults: a full disk, NaN, SIGTERM, Ctrl-C, kills,
damaged files, a concurrent run, a Slurm controller that is down. No finished record is lost
and nothing hangs.

Each test injects one fault into ``bench`` run in this process and checks what the
user sees (one line where the command stops) and what stays on disk: every record
that was finished before the fault is byte for byte as it was (a failure says
``RECORD LOST``), no temporary file is left, and the test ends within its timeout
(pytest-timeout: a hang fails it). Runs that must train are tiny (40 images, one
epoch, 4 equivariance images); the others replace the run by a fake one that writes
its record through the real store. ``tests/robustness_totals.py`` counts the
outcomes of this module and of tests/test_bad_inputs.py.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import signal
from functools import partial
from pathlib import Path

import pytest
from test_launchers import FakeSlurm

from scaleqbench.bench.store import atomic_io
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch import job as job_module
from scaleqbench.bench.run import train as train_module
from scaleqbench.bench.errors import LauncherError
from scaleqbench.bench.launch.api import SchedulerUnavailable
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.launch.slurm import SlurmLauncher
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.launch.sweep import sweep_file

pytestmark = pytest.mark.timeout(60)

TINY = ["--methods", "cnn", "--limit-train", "40", "--limit-eval", "20", "--epochs", "1",
        "--no-report", "--quiet"]


def bench(*argv: str) -> int:
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def records(out: Path) -> dict[str, bytes]:
    """Every record file of ``out`` by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted((out / "runs").glob("*.json"))}


def assert_kept(before: dict[str, bytes], out: Path) -> None:
    """Every record of ``before`` that was finished is still there, unchanged."""
    now = records(out)
    for name, data in before.items():
        if json.loads(data).get("status") == "ok":
            assert now.get(name) == data, f"RECORD LOST: {name} changed or vanished"


def no_temporaries(out: Path) -> None:
    left = [str(p) for p in out.rglob("*.tmp")] if out.exists() else []
    assert not left, f"temporary files left behind: {left}"


def one_line(err: str, *phrases: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def fast(monkeypatch, cache_dir):
    """Real runs, measured on 4 images for equivariance (the rest of the run unchanged)."""
    real = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate",
                        lambda *a, **k: real(*a, **{**k, "eq_images": 4}))


@pytest.fixture()
def fake_runs(monkeypatch, cache_dir):
    """Runs that write an ``ok`` record through the real store at once; ``calls`` lists the
    specs run, ``before(spec, n)`` (settable) runs first, for faults."""
    state = {"calls": [], "before": None}

    def run_one(spec, out_dir, progress=False, context=None):
        state["calls"].append(spec)
        if state["before"] is not None:
            state["before"](spec, len(state["calls"]))
        rec = RunRecord.for_spec(spec, status="ok", test_acc=0.5, params=1, **(context or {}))
        RunStore(out_dir).write_job(rec)  # as the real job writes: its launcher's verdict holds
        return rec

    monkeypatch.setattr(job_module, "run_one", run_one)
    return state


def full_disk_for(monkeypatch, *fragments: str, at: str = "write",
                  but_not: tuple[str, ...] = ()) -> None:
    """From now on, an atomic write whose temporary file's name holds one of ``fragments``
    fails for want of space: half its first chunk lands, then ENOSPC (``at="write"``), or
    everything lands and fsync fails (``at="fsync"``)."""

    def doomed(fd: int) -> bool:
        name = os.readlink(f"/proc/self/fd/{fd}")
        return any(f in name for f in fragments) and not any(f in name for f in but_not)

    class FullDisk(io.FileIO):
        def write(self, b) -> int:
            data = bytes(b)
            super().write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_open, real_fsync = open, os.fsync

    def open_(fd, mode="r", *a, **k):
        if at == "write" and isinstance(fd, int) and doomed(fd):
            return FullDisk(fd, "wb")
        return real_open(fd, mode, *a, **k)

    def fsync(fd):
        if at == "fsync" and doomed(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(atomic_io, "open", open_, raising=False)
    monkeypatch.setattr(atomic_io.os, "fsync", fsync)


# ---- a full disk (issue 13 case 5) ------------------------------------------------------------

@pytest.mark.parametrize("target, but_not, fits", [
    (".last.pt.", (), True), ("/runs/", (), False), (".pt.", (".last.pt.",), True),
], ids=["epoch-checkpoint", "record", "best-checkpoint"])
def test_a_full_disk_during_a_run_is_one_line(target, but_not, fits, tmp_path, fast,
                                              monkeypatch, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    capsys.readouterr()
    full_disk_for(monkeypatch, target, but_not=but_not)
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 4
    line = one_line(capsys.readouterr().err, "no space left on", "while writing")
    assert target.strip(".") in line
    assert_kept(before, out)
    no_temporaries(out)
    new = {k: v for k, v in records(out).items() if k not in before}
    if fits:  # the run is recorded as failed, saying why
        [rec] = [json.loads(v) for v in new.values()]
        assert rec["status"] == "failed" and "No space left" in rec["error"]
    else:
        assert not new


@pytest.mark.parametrize("target, at", [("/runs/", "fsync"), ("sweep.json", "write"),
                                        ("leaderboard.md", "write")],
                         ids=["record-fsync", "sweep-json", "leaderboard"])
def test_a_full_disk_around_the_runs_is_one_line(target, at, tmp_path, fake_runs, monkeypatch,
                                                 capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before, sweep = records(out), sweep_file(out).read_bytes()
    capsys.readouterr()
    full_disk_for(monkeypatch, target, at=at)
    assert bench("run", *TINY, "--seeds", "0-2", "--out", out) == 4
    one_line(capsys.readouterr().err, "no space left on", f"while writing {out}")
    assert_kept(before, out)
    no_temporaries(out)
    if target == "sweep.json":
        assert sweep_file(out).read_bytes() == sweep
    if target == "leaderboard.md":  # the runs finished before the leaderboard: all kept
        assert len(records(out)) == 3


def test_a_full_disk_for_the_report_keeps_records_and_leaderboard(tmp_path, fake_runs,
                                                                  monkeypatch, capsys, caplog):
    out = tmp_path / "exp"
    full_disk_for(monkeypatch, "/report/")
    args = [a for a in TINY if a != "--no-report"]
    assert bench("run", *args, "--seeds", "0,1", "--out", out) == 0
    assert len(records(out)) == 2 and (out / "leaderboard.md").is_file()
    assert any("report not written" in r.getMessage() and "no space left" in r.getMessage()
               for r in caplog.records)
    no_temporaries(out)


# ---- NaN (case 7), a damaged per-epoch state (case 6) -------------------------------------------

def test_a_nan_run_drops_its_checkpoint_and_its_retry_starts_afresh(tmp_path, fast, monkeypatch,
                                                                    capsys, caplog):
    import torch.nn.functional as F

    from scaleqbench.bench.run import recipes

    out, saved = tmp_path / "exp", []
    real_save = train_module.save_state

    def save_state(*a, **k):  # epoch 1 ends with its per-epoch state saved
        saved.append(1)
        return real_save(*a, **k)

    def nan_in_epoch_two(model, x, y):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return (loss * float("nan") if saved else loss), logits

    monkeypatch.setattr(train_module, "save_state", save_state)

    monkeypatch.setattr(recipes, "loss_for", lambda method, config: nan_in_epoch_two)
    args = [*TINY, "--epochs", "2", "--out", out]
    assert bench("run", *args) == 1  # every run failed
    [rec] = [json.loads(v) for v in records(out).values()]
    assert rec["status"] == "failed" and rec["failed_epoch"] == 2
    assert not list((out / "checkpoints").glob("*.last.pt")), "the diverged state was kept"
    said = [r.getMessage() for r in caplog.records if "removed its per-epoch checkpoint" in
            r.getMessage()]
    assert len(said) == 1 and "a retry starts from epoch 0" in said[0]
    monkeypatch.setattr(recipes, "loss_for", lambda method, config: recipes.cross_entropy_loss)
    assert bench("run", *args) == 0
    [rec] = [json.loads(v) for v in records(out).values()]
    assert rec["status"] == "ok" and rec.get("resumed_from_epoch") is None


def test_a_torn_epoch_checkpoint_restarts_with_one_warning(tmp_path, fast, capsys, caplog):
    from scaleqbench.bench.run.resolve import resolve
    from scaleqbench.bench.store.checkpoint import last_checkpoint_path

    out = tmp_path / "exp"
    # the sweep's spec: resolved (its run id hashes what it computes with); published: pad
    s = resolve(RunSpec("cnn", epochs=1, limit_train=40, limit_eval=20, input="pad"))
    torn = last_checkpoint_path(out, s.run_id)
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"PK\x03\x04 torn by kill -9")
    assert bench("run", *TINY, "--out", out) == 0
    said = [r.getMessage() for r in caplog.records if "cannot resume" in r.getMessage()]
    assert len(said) == 1 and "restarts from epoch 0" in said[0]
    assert json.loads(records(out)[f"{s.run_id}.json"])["status"] == "ok"


# ---- signals (case 8) ------------------------------------------------------------------------

@pytest.mark.parametrize("how, status", [("sigterm", 143), ("sighup", 129), ("ctrl-c", 130)])
def test_an_interrupted_sweep_keeps_its_records_and_says_how_to_resume(how, status, tmp_path,
                                                                       fake_runs, capsys):
    out = tmp_path / "exp"

    def stop_second(spec, n):
        if n == 2:
            if how in ("sigterm", "sighup"):
                os.kill(os.getpid(), signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
            else:
                raise KeyboardInterrupt

    fake_runs["before"] = stop_second
    assert bench("run", *TINY, "--seeds", "0-2", "--out", out) == status
    said = capsys.readouterr().out
    assert "interrupted; finished records are kept" in said
    assert "re-run the same command to resume" in said
    before = records(out)
    assert len(before) == 1
    fake_runs["before"] = None
    assert bench("run", *TINY, "--seeds", "0-2", "--out", out) == 0
    assert "1 already done" in capsys.readouterr().out
    assert_kept(before, out)
    assert len(records(out)) == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def test_sigterm_while_a_record_is_written_leaves_no_part_of_it(tmp_path, fake_runs,
                                                                 monkeypatch, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    real_fsync = os.fsync

    def fsync(fd):
        if "/runs/" in os.readlink(f"/proc/self/fd/{fd}"):
            os.kill(os.getpid(), signal.SIGTERM)
        return real_fsync(fd)

    monkeypatch.setattr(atomic_io.os, "fsync", fsync)
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 143
    assert_kept(before, out)
    assert records(out).keys() == before.keys()
    no_temporaries(out)


# ---- what a kill -9 leaves, damaged files (cases 1, 6) ----------------------------------------

def test_a_stale_lock_and_a_half_written_temporary_are_no_obstacle(tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    (out / ".bench.lock").write_text("999999")  # its holder was killed: the kernel let go
    stray = out / "runs" / f".{next(iter(before))}.dead.tmp"
    stray.write_text('{"half": ')
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    assert_kept(before, out)
    assert len(records(out)) == 2
    capsys.readouterr()
    assert bench("leaderboard", out) == 0
    assert "warning" not in capsys.readouterr().err  # the temporary is not a record


def test_a_truncated_record_is_set_aside_and_recomputed(tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    [first, second] = sorted((out / "runs").glob("*.json"))
    damaged = first.read_bytes()[:40]
    first.write_bytes(damaged)
    kept = {second.name: second.read_bytes()}
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    assert_kept(kept, out)
    [aside] = list((out / "runs").glob(f"{first.name}.corrupt-*"))
    assert aside.read_bytes() == damaged  # never deleted
    assert json.loads(first.read_text())["status"] == "ok"


def test_a_corrupt_record_is_named_by_the_leaderboard_and_strict_fails(tmp_path, fake_runs,
                                                                        capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    first = sorted((out / "runs").glob("*.json"))[0]
    first.write_text("{}")
    capsys.readouterr()
    assert bench("leaderboard", out) == 0
    assert str(first) in capsys.readouterr().err
    assert bench("leaderboard", out, "--strict") != 0
    assert "--strict stops here" in capsys.readouterr().err


def test_a_record_of_a_newer_schema_is_not_replaced(tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    path = next((out / "runs").glob("*.json"))
    data = json.loads(path.read_text())
    data["schema_version"] = 999
    path.write_text(json.dumps(data))
    newer = path.read_bytes()
    capsys.readouterr()
    assert bench("run", *TINY, "--out", out) != 0
    one_line(capsys.readouterr().err, "999")
    assert path.read_bytes() == newer


def test_a_damaged_dataset_cache_is_rebuilt(tmp_path, fake_runs, capsys, caplog):
    out, cache = tmp_path / "exp", tmp_path / "cache"
    assert bench("data", "build", "mnist-res", "--cache-dir", cache, "--quiet") == 0
    [cached] = cache.glob("*.pt")
    cached.write_bytes(cached.read_bytes()[:1000])  # a copy cut short, a disk error...
    assert bench("run", *TINY, "--out", out, "--cache-dir", cache) == 0
    said = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
    assert len(said) == 1 and str(cached) in said[0]
    assert len(records(out)) == 1 and cached.stat().st_size > 1000


def test_a_corrupt_sweep_file_does_not_touch_the_records(tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    sweep_file(out).write_text("{torn")
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    assert_kept(before, out)
    assert len(json.loads(sweep_file(out).read_text())["runs"]) == 2


# ---- concurrent runs -------------------------------------------------------------------------

def test_a_second_run_on_the_same_folder_is_refused_in_one_line(tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    capsys.readouterr()
    with RunStore(out).lock():
        assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 3
    one_line(capsys.readouterr().err, "in use by another bench run")
    assert records(out) == before


def test_two_sweeps_in_two_folders_share_the_cache(tmp_path, fake_runs, capsys):
    import threading

    results = {}

    def sweep(name: str) -> None:  # the lock is per folder: both go ahead
        results[name] = cli.main(["run", *TINY, "--seeds", "0,1", "--out",
                                  str(tmp_path / name)])

    worker = threading.Thread(target=sweep, args=("b",))
    worker.start()
    sweep("a")
    worker.join(30)
    assert not worker.is_alive() and results == {"a": 0, "b": 0}
    assert len(records(tmp_path / "a")) == len(records(tmp_path / "b")) == 2


# ---- Slurm (cases 3, 4, 9, 13), with a fake cluster -------------------------------------------

class FakeCluster(FakeSlurm):
    """Submits by running nothing; ``tasks`` are run by the test (or the poll hook)."""

    def __init__(self, down_at_submit: bool = False):
        super().__init__()
        self.down_at_submit, self.tasks = down_at_submit, []

    def submit(self, jobs, folder, config, name):
        if self.down_at_submit:
            raise LauncherError("Slurm did not take the job array (sbatch: error: Unable to "
                                "contact slurm controller); check the cluster with `sinfo`, "
                                "or run with --launcher local")
        ids = [f"7_{i}" for i in range(len(jobs))]
        self.jobs.update(dict.fromkeys(ids, "PENDING"))
        self.tasks += list(zip(ids, jobs))
        return ids


@pytest.fixture()
def cluster(monkeypatch):
    fake = FakeCluster()

    def from_options(cls, options, progress):
        return cls(progress=False, poll_s=0, scheduler=fake)

    monkeypatch.setattr(SlurmLauncher, "from_options", classmethod(from_options))
    return fake


@pytest.mark.parametrize("fresh", [True, False], ids=["new-folder", "existing-folder"])
def test_slurm_down_at_submit_leaves_nothing_behind(fresh, tmp_path, cluster, fake_runs, capsys):
    out = tmp_path / "exp"
    before, sweep = {}, None
    if not fresh:
        assert bench("run", *TINY, "--out", out) == 0
        before, sweep = records(out), sweep_file(out).read_bytes()
        capsys.readouterr()
    cluster.down_at_submit = True
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--launcher", "slurm") == 2
    one_line(capsys.readouterr().err, "Unable to contact slurm controller")
    if fresh:
        assert not out.exists(), "a refused sweep left its folder"
    else:
        assert sweep_file(out).read_bytes() == sweep  # no phantom "not submitted" runs
        assert records(out) == before


def test_a_silent_controller_is_followed_from_the_records(tmp_path, cluster, fake_runs,
                                                          monkeypatch, capsys, caplog):
    out = tmp_path / "exp"

    def world(poll: int) -> None:
        cluster.down = True  # slurmctld killed: the tasks still run and write their records
        if poll == 2:
            monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": "7_0"})
            cluster.tasks[0][1]()
        if poll == 3:
            monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": "7_1"})
            cluster.tasks[1][1]()

    cluster.before_poll = world
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--launcher", "slurm") == 0
    assert len(records(out)) == 2
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(down) == 1


def test_a_cancelled_task_that_finishes_later_changes_no_record(tmp_path, cluster, fake_runs,
                                                                monkeypatch, capsys):
    out = tmp_path / "exp"

    def world(poll: int) -> None:
        cluster.jobs["7_0"] = "CANCELLED by 0"

    cluster.before_poll = world
    assert bench("run", *TINY, "--out", out, "--launcher", "slurm") == 1  # it failed
    settled = records(out)
    # the cancelled task's process goes on to its end and tries to write
    monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": "7_0"})
    cluster.tasks[0][1]()
    assert records(out) == settled
    [rec] = [json.loads(v) for v in settled.values()]
    assert rec["status"] == "failed" and rec["end_state"] == "cancelled"
