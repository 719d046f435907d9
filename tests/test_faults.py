"""Injected faults during runs: a full disk, NaN, a torn checkpoint, SIGTERM and Ctrl-C. No
finished record is lost and nothing hangs.

Each test injects one fault into ``bench`` run in this process and checks what the
user sees (one line where the command stops) and what stays on disk: every record
that was finished before the fault is byte for byte as it was (a failure says
``RECORD LOST``), no temporary file is left, and the test ends within its timeout
(pytest-timeout: a hang fails it). Runs that must train are tiny (40 images, one
epoch, 4 equivariance images); the others replace the run by a fake one that writes
its record through the real store (``faults_support``). ``tests/robustness_totals.py``
counts the outcomes of the ``test_faults*`` modules and of tests/test_bad_inputs.py.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal

import pytest

from scaleqbench.bench.store import atomic_io
from scaleqbench.bench.run import train as train_module
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.launch.sweep import sweep_file

# fake_runs, fast: fixtures, found by pytest under these names
from faults_support import (
    assert_kept, bench, fake_runs, fast, no_temporaries, one_line, records, TINY)


pytestmark = pytest.mark.timeout(60)


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
    from scaleqbench.bench.spec import expand
    from scaleqbench.bench.store.checkpoint import last_checkpoint_path

    out = tmp_path / "exp"
    # the sweep's spec: resolved (its run id hashes what it computes with); published: pad
    s = resolve(expand([("cnn", {})], "mnist-res", [0], "quick", input="pad", epochs=1,
                       limit_train=40, limit_eval=20)[0])
    torn = last_checkpoint_path(out, s.run_id)
    torn.parent.mkdir(parents=True)
    torn.write_bytes(b"PK\x03\x04 torn by kill -9")
    assert bench("run", *TINY, "--out", out) == 0
    said = [r.getMessage() for r in caplog.records if "cannot resume" in r.getMessage()]
    assert len(said) == 1 and "restarts from epoch 0" in said[0]
    assert json.loads(records(out)[f"{s.run_id}.json"])["status"] == "ok"


# ---- signals (case 8) ------------------------------------------------------------------------

@pytest.mark.parametrize("how, status", [("sigterm", 143), ("sighup", 129), ("ctrl-c", 130)])
def test_an_interrupted_sweep_keeps_its_records_and_says_how_to_resume(
        how, status, tmp_path, fake_runs, capsys, default_dispositions):
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


def test_a_sweep_started_under_nohup_survives_a_hangup(tmp_path, fake_runs, capsys,
                                                       default_dispositions):
    """SIGHUP ignored at the start (``nohup``) stays ignored: the hang-up reaches the
    sweep while it runs and every run still finishes."""
    out = tmp_path / "exp"
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    fake_runs["before"] = lambda spec, n: n == 2 and os.kill(os.getpid(), signal.SIGHUP)
    assert bench("run", *TINY, "--seeds", "0-2", "--out", out) == 0
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    assert len(records(out)) == 3 and "interrupted" not in capsys.readouterr().out


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
