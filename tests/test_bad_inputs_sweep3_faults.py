"""The third sweep's faults: an output folder that cannot be written (found before a run
trains; a write refused after it trains keeps the finished record elsewhere and names it),
Ctrl-C at odd moments, damaged dataset caches, a full disk around the data, a plugin
whose logits are NaN, unicode and spaces in paths. No finished record is lost, the lock
is released, nothing hangs (see tests/test_faults.py for how each fault is checked).
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from scaleqbench.bench.store import rescue, run_store
from scaleqbench.bench.store.run_store import RunStore

from faults_support import (  # noqa: F401 - fake_runs, fast: fixtures
    TINY, assert_kept, bench, fake_runs, fast, no_temporaries, one_line, records)

pytestmark = pytest.mark.timeout(90)


def refuse_records(monkeypatch, code: int, also: tuple[str, ...] = ()) -> None:
    """From now on, writing a record under ``runs/`` (and under each of ``also``) fails with
    ``OSError(code)``: permissions changed mid-run, a read-only remount, a full disk."""
    real = run_store.atomic_write_text, rescue.atomic_write_text

    def refusing(which):
        def write(path, text, *a, **k):
            if f"{os.sep}runs{os.sep}" in str(path) or any(f in str(path) for f in also):
                raise OSError(code, os.strerror(code), str(path))
            return real[which](path, text, *a, **k)
        return write

    monkeypatch.setattr(run_store, "atomic_write_text", refusing(0))
    monkeypatch.setattr(rescue, "atomic_write_text", refusing(1))


def lock_is_free(out) -> bool:
    with RunStore(out).lock():
        return True


# ---- every place a run writes is checked before it trains -------------------------------------

@pytest.mark.parametrize("blocked, said", [
    ("runs", "runs is a file, not a folder"), ("checkpoints", "checkpoints is a file"),
    (".locks", ".locks is a file"), (".bench.lock", "cannot write the lock file"),
])
def test_a_place_a_run_writes_that_cannot_be_written_is_found_before_training(
        blocked, said, tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    if blocked == "runs":
        for p in (out / "runs").iterdir():
            os.replace(p, tmp_path / p.name)
        (out / "runs").rmdir()
        before = {}
    target = out / blocked
    if target.is_dir():
        for p in target.iterdir():
            p.unlink()
        target.rmdir()
    target.mkdir() if blocked == ".bench.lock" else target.write_text("in the way")
    calls = len(fake_runs["calls"])
    capsys.readouterr()
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 2
    one_line(capsys.readouterr().err, said)
    assert len(fake_runs["calls"]) == calls  # nothing trained
    assert_kept(before, out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod: simulated above")
def test_a_read_only_runs_folder_is_found_before_training(tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    (out / "runs").chmod(0o555)
    try:
        capsys.readouterr()
        assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 2
        one_line(capsys.readouterr().err, "cannot write to --out", "runs")
        assert len(fake_runs["calls"]) == 1
    finally:
        (out / "runs").chmod(0o755)


# ---- a record refused after its run trained: kept elsewhere, named, the lock released --------

@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_a_record_refused_after_training_is_kept_and_named(code, tmp_path, fake_runs,
                                                           monkeypatch, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    refuse_records(monkeypatch, code)
    capsys.readouterr()
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 2
    line = one_line(capsys.readouterr().err, "cannot write the record of run",
                    "the finished record is kept at", "mv ")
    [kept] = (out / "rescued").glob("*.json")
    assert str(kept) in line and json.loads(kept.read_text())["status"] == "ok"
    assert_kept(before, out)
    assert not (out / ".bench.lock").exists() and lock_is_free(out)
    monkeypatch.undo()
    os.replace(kept, out / "runs" / kept.name)  # what the line says to do
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    assert "2 already done" in capsys.readouterr().out


def test_a_full_disk_keeps_the_record_on_another_file_system(tmp_path, fake_runs, monkeypatch,
                                                             capsys):
    out, elsewhere = tmp_path / "exp", tmp_path / "other-fs"
    monkeypatch.setattr(rescue.tempfile, "gettempdir", lambda: str(elsewhere))
    refuse_records(monkeypatch, errno.ENOSPC, also=(f"{os.sep}rescued{os.sep}",))
    assert bench("run", *TINY, "--out", out) == 4
    line = one_line(capsys.readouterr().err, "no space left on", "kept at")
    [kept] = elsewhere.rglob("*.json")
    assert str(kept) in line and json.loads(kept.read_text())["status"] == "ok"
    assert lock_is_free(out)


def test_a_record_that_fits_nowhere_says_so_and_releases_the_lock(tmp_path, fake_runs,
                                                                  monkeypatch, capsys):
    out = tmp_path / "exp"
    refuse_records(monkeypatch, errno.EACCES, also=("rescued",))
    assert bench("run", *TINY, "--out", out) == 2
    one_line(capsys.readouterr().err, "could not be kept anywhere else")
    assert lock_is_free(out)


def test_a_trained_run_whose_record_is_refused_keeps_its_numbers(tmp_path, fast, monkeypatch,
                                                                 capsys):
    out = tmp_path / "exp"
    refuse_records(monkeypatch, errno.EROFS)
    assert bench("run", *TINY, "--out", out) == 2
    one_line(capsys.readouterr().err, "Read-only file system", "kept at")
    [kept] = (out / "rescued").glob("*.json")
    rec = json.loads(kept.read_text())
    assert rec["status"] == "ok" and 0 <= rec["test_acc"] <= 1 and rec["params"] > 0
    assert lock_is_free(out)


# ---- Ctrl-C at odd moments (driven by a hook) ------------------------------------------------

def _interrupt(*a, **k):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["source-check", "sweep-file", "leaderboard", "cache-write"])
def test_ctrl_c_at_an_odd_moment_keeps_every_record_and_the_lock_free(where, tmp_path,
                                                                      fake_runs, monkeypatch,
                                                                      capsys):
    from scaleqbench.bench.cli import cmd_run, common
    from scaleqbench.bench.launch import sweep
    from scaleqbench.datasets import cache

    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    if where == "source-check":  # a new folder: stopped before anything is written
        out = tmp_path / "new"
        monkeypatch.setattr(cmd_run, "check_sources", _interrupt)
    elif where == "sweep-file":
        monkeypatch.setattr(sweep, "save_sweep", _interrupt)
    elif where == "leaderboard":
        monkeypatch.setattr(common, "show_leaderboard", _interrupt)
    else:  # a real build of a fresh cache, stopped while its file is written
        fake_runs["before"] = lambda spec, n: cache.load_or_build(
            "mnist-res", seed=7, cache_dir=tmp_path / "cache")
        monkeypatch.setattr(cache.os, "fsync", _interrupt)
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 130
    assert_kept(before, tmp_path / "exp")
    no_temporaries(tmp_path)
    if where == "source-check":
        assert not out.exists()
    else:
        assert lock_is_free(out)


def test_ctrl_c_during_data_build_leaves_no_cache_entry(tmp_path, monkeypatch, capsys):
    from scaleqbench.datasets import cache

    monkeypatch.setattr(cache, "build", _interrupt)
    assert bench("data", "build", "mnist-res", "--seed", "9", "--cache-dir",
                 tmp_path / "c") == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


# ---- damaged caches and a full disk around the data: the run goes on -------------------------

@pytest.mark.parametrize("damage", ["empty-stamp", "stamp-of-garbage", "entry-is-a-folder",
                                    "cache-dir-is-a-file", "cache-disk-full"])
def test_a_damaged_or_unwritable_dataset_cache_does_not_stop_a_run(damage, tmp_path,
                                                                   monkeypatch, capsys,
                                                                   fast):
    from scaleqbench.datasets import cache

    cdir, out = tmp_path / "cache", tmp_path / "exp"
    assert bench("data", "build", "mnist-res", "--cache-dir", cdir, "--quiet") == 0
    [entry] = cdir.glob("*.pt")
    stamp = entry.with_suffix(".sha256")
    if damage == "empty-stamp":
        stamp.write_text("")
    elif damage == "stamp-of-garbage":
        stamp.write_bytes(b"\x00\xff" * 10)
    elif damage == "entry-is-a-folder":
        entry.unlink()
        entry.mkdir()
    elif damage == "cache-dir-is-a-file":
        cdir = tmp_path / "afile"
        cdir.write_text("not a folder")
    else:
        def full(path, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(cache, "_atomic_write", full)
        entry.unlink()
    assert bench("run", *TINY, "--out", out, "--cache-dir", cdir) == 0
    [rec] = [json.loads(v) for v in records(out).values()]
    assert rec["status"] == "ok"
    no_temporaries(tmp_path)


def test_a_full_disk_for_the_epoch_csv_stops_the_log_not_the_run(tmp_path, fast, monkeypatch,
                                                                  capsys, caplog):
    from test_faults import full_disk_for

    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    before = records(out)
    full_disk_for(monkeypatch, ".epochs.csv.")
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    assert any("csv log stopped" in r.getMessage() for r in caplog.records)
    assert_kept(before, out)
    assert [json.loads(v)["status"] for v in records(out).values()] == ["ok", "ok"]
    no_temporaries(out)
    assert lock_is_free(out)


# ---- records and plugins ---------------------------------------------------------------------

def test_a_future_schema_record_is_named_and_the_others_are_shown(tmp_path, fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out) == 0
    first = sorted((out / "runs").glob("*.json"))[0]
    data = json.loads(first.read_text())
    data["schema_version"] = 99
    first.write_text(json.dumps(data))
    capsys.readouterr()
    assert bench("leaderboard", out) == 0
    captured = capsys.readouterr()
    assert str(first) in captured.err and "1 runs" in captured.out.replace("1 run,", "1 runs")


def test_a_record_path_that_is_a_folder_is_set_aside_and_the_run_recomputed(tmp_path,
                                                                            fake_runs, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    [path] = (out / "runs").glob("*.json")
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("kept")
    assert bench("run", *TINY, "--out", out) == 0
    assert json.loads(path.read_text())["status"] == "ok"
    [aside] = (out / "runs").glob(f"{path.name}.corrupt-*")
    assert (aside / "inside").read_text() == "kept"  # never deleted


@pytest.fixture()
def nan_plugin():
    from torch import nn

    from scaleqbench import methods
    from scaleqbench.methods import MethodCard

    class NaNLogits(nn.Module):
        def __init__(self, in_channels=1, num_classes=10):
            super().__init__()
            self.fc = nn.Linear(in_channels, num_classes)

        def features(self, x):
            return {"pool": x.mean((-2, -1))}

        def forward(self, x):
            return self.fc(x.mean((-2, -1))) * float("nan")

    methods.register_method("nan_logits", MethodCard(family="test"),
                            configs={"mnist": {}, "quick": {}})(
        lambda in_channels=1, num_classes=10: NaNLogits(in_channels, num_classes))
    yield "nan_logits"
    methods.unregister_method("nan_logits")


def test_a_plugin_with_nan_logits_fails_its_own_run_only(tmp_path, nan_plugin, fast, capsys):
    out = tmp_path / "exp"
    args = [a if a != "cnn" else "cnn,nan_logits" for a in TINY]
    assert bench("run", *args, "--out", out) == 1  # one run failed: a non-zero exit
    recs = {name.partition("-s")[0]: json.loads(v) for name, v in records(out).items()}
    assert recs["cnn"]["status"] == "ok" and recs["nan_logits"]["status"] == "failed"
    assert "non-finite loss" in recs["nan_logits"]["error"]
    said = capsys.readouterr().out
    assert "summary: 2 run(s) this time, 1 ok, 1 failed" in said
    assert lock_is_free(out)


# ---- unicode and spaces in paths -------------------------------------------------------------

def test_unicode_and_spaces_in_every_path_are_no_obstacle(tmp_path, fake_runs, capsys,
                                                          monkeypatch):
    base = tmp_path / "résumé dir" / "実験 ü"
    out, cdir = base / "exp 1", base / "cache ß"
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--cache-dir", cdir) == 0
    assert len(records(out)) == 2
    capsys.readouterr()
    assert bench("leaderboard", out, "--out", base / "board é") == 0
    assert (base / "board é" / "leaderboard.md").is_file()
    assert bench("status", out) == 0
    monkeypatch.chdir(base)
    assert bench("data", "build", "mnist-res", "--seed", "3", "--cache-dir", cdir,
                 "--quiet") == 0
    assert len(list(cdir.glob("*.pt"))) == 1
