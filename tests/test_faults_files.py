"""Injected faults on disk and between runs: what a kill -9 leaves (a stale lock, a
half-written temporary), truncated, corrupt and newer records, a damaged dataset cache or
sweep file, and concurrent runs. No finished record is lost and nothing hangs (see
tests/test_faults.py for how each fault is checked).
"""

from __future__ import annotations

import json

import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.launch.sweep import sweep_file

# fake_runs: a fixture, found by pytest under this name
from faults_support import assert_kept, bench, fake_runs, fast, one_line, records, TINY

pytestmark = pytest.mark.timeout(60)


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


def test_a_damaged_dataset_cache_is_rebuilt(tmp_path, fast, capsys, caplog):
    # a real run: each run loads its dataset when it is computed (nothing is built up front)
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
