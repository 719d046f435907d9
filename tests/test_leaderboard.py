"""The leaderboard key and the integrity of what the leaderboard, report, status and run read.

One row per protocol and method: runs that differ in epochs or source never share a mean.
A run is identified by its protocol, method and seed, not by the folder it is stored in,
so a copied folder neither recomputes nor counts twice. A damaged record is named by every
reader and never silently dropped. (Intervals, ties and ranks:
tests/test_leaderboard_intervals.py.)
"""

from __future__ import annotations

import re
import shutil
import statistics
from pathlib import Path

import pytest

from scaleqbench.bench.report.leaderboard import records_frame, summarize
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.spec import RunSpec

from leaderboard_support import run_cli, t_bounds, table, TINY


REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "mnist-res-quick"
SCHEMA3 = Path(__file__).resolve().parent / "fixtures" / "schema3"  # the 0.1.0 reference


SCHEMA0 = Path(__file__).resolve().parent / "fixtures" / "schema0" / "mnist-res-quick"


def made(folder: Path, seed: int, acc: float, **spec_fields) -> RunRecord:
    rec = RunRecord.for_spec(RunSpec("cnn", seed=seed, experiment=folder.name, **spec_fields),
                             status="ok", test_acc=acc, eq_err=0.1, params=1000)
    RunStore(folder).write(rec)
    return rec


def test_runs_of_different_epochs_or_sources_never_share_a_row(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    accs = {("a", 0): 0.61, ("a", 1): 0.63, ("b", 0): 0.81, ("b", 1): 0.86, ("b", 2): 0.8}
    for (name, seed), acc in accs.items():
        made(tmp_path / name, seed, acc, epochs=1 if name == "a" else 2)
    assert run_cli("leaderboard", a, b) == 0
    rows = table(capsys.readouterr().out)
    assert len(rows) == 2 and "source" not in rows[0]  # only the key fields that differ show
    by_epochs = {r["epochs"]: r for r in rows}
    for epochs, name in (("1", "a"), ("2", "b")):
        mine = [acc for (n, _), acc in accs.items() if n == name]
        lo, hi = t_bounds(mine)
        assert by_epochs[epochs]["test acc (%)"].strip("*") == \
            f"{100 * statistics.mean(mine):.2f} [{lo:.2f}, {hi:.2f}]"
        assert by_epochs[epochs]["runs"] == f"{len(mine)} runs, 0 failed"
    made(tmp_path / "c", 0, 0.9, epochs=1, source="torchvision")
    assert run_cli("leaderboard", a, b, tmp_path / "c") == 0
    rows = table(capsys.readouterr().out)
    assert len(rows) == 3
    assert sorted((r["source"], r["epochs"]) for r in rows) == [
        ("embedded", "1"), ("embedded", "2"), ("torchvision", "1")]


def test_seeds_of_one_protocol_share_a_row_and_options_do_not(tmp_path):
    recs = [made(tmp_path, s, 0.5) for s in (0, 1, 2)]
    recs.append(made(tmp_path, 0, 0.7, method_kwargs=(("width", 2),)))
    recs.append(made(tmp_path, 0, 0.7, limit_train=100))
    board = summarize(records_frame(recs))
    assert sorted(board.runs) == [1, 1, 3]
    assert sorted(board.method) == ["cnn", "cnn", "cnn[width=2]"]
    assert sorted(board.limit_train, key=str) == [100, None, None]


def test_schema0_records_are_read(capsys):
    assert run_cli("leaderboard", SCHEMA0) == 0
    rows = table(capsys.readouterr().out)
    assert len(rows) == 6 and {r["runs"] for r in rows} == {"1 run, 0 failed"}


def test_the_committed_reference_records_are_read(capsys):
    """The committed reference (three seeds of every method): one row per method, each with
    its three runs, a Student-t interval on every metric, a rank range from the paired tests
    over seeds, and ties bold."""
    assert run_cli("leaderboard", REFERENCE, "--strict") == 0
    out = capsys.readouterr().out
    rows = table(out)
    assert len(rows) * 3 == len(list((REFERENCE / "runs").glob("*.json"))) == 36
    assert {r["runs"] for r in rows} == {"3 runs, 0 failed"}
    for column in ("test acc (%)", "scale consist. (%)", "equiv. err", "logit inv. err"):
        assert all("[" in r[column] and "[—]" not in r[column] for r in rows), column
    assert all(r["rank"] != "—" for r in rows)
    assert sum(r["test acc (%)"].startswith("**") for r in rows) > 1  # ties with the best
    assert any("–" in r["rank"] for r in rows) and "paired t-test over seeds" in out


def test_records_of_version_0_1_0_are_read_without_intervals_or_ranks(capsys):
    """Records written before per-image outcomes (one seed each) have no one-seed interval
    and no rank: said, not a crash; only the best of each column is bold (no test can tie
    another with it)."""
    assert run_cli("leaderboard", SCHEMA3, "--strict") == 0
    out = capsys.readouterr().out
    rows = table(out)
    assert len(rows) == len(list((SCHEMA3 / "runs").glob("*.json"))) == 12
    assert {r["runs"] for r in rows} == {"1 run, 0 failed"}
    assert all("[—]" in r["test acc (%)"] for r in rows)
    assert {r["rank"] for r in rows} == {"—"}
    assert sum(r["test acc (%)"].startswith("**") for r in rows) == 1
    assert "no comparison could be tested here" in out


@pytest.fixture()
def trained(monkeypatch):
    """``bench run`` with a stand-in for training: each call records a finished run."""
    import scaleqbench.bench.launch.job as job

    calls: list[RunSpec] = []

    def fake_run_one(spec, out_dir, progress=False, context=None):
        calls.append(spec)
        rec = RunRecord.for_spec(spec, status="ok", test_acc=0.5 + 0.1 * spec.seed,
                                 eq_err=0.2, params=1000, **(context or {}))
        RunStore(out_dir).write(rec)
        return rec

    monkeypatch.setattr(job, "run_one", fake_run_one)
    return calls


@pytest.fixture()
def exp(tmp_path, trained, cache_dir) -> Path:
    out = tmp_path / "exp"
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", out, *TINY) == 0
    assert len(trained) == 2
    trained.clear()
    return out


def test_a_copied_experiment_is_resumed_and_counted_once(exp, tmp_path, trained, capsys):
    copy = tmp_path / "exp2"
    shutil.copytree(exp, copy)
    capsys.readouterr()
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", copy, *TINY) == 0
    assert trained == [] and "2 already done" in capsys.readouterr().out
    assert run_cli("leaderboard", exp, copy) == 0
    out, err = capsys.readouterr()
    (row,) = table(out)
    lo, hi = t_bounds([0.5, 0.6])
    assert row["runs"] == "2 runs, 0 failed"
    assert row["test acc (%)"].strip("*") == f"55.00 [{lo:.2f}, {hi:.2f}]"
    assert f"2 run(s) of {copy} are also in {exp}" in err
    assert run_cli("leaderboard", exp, exp) == 0
    out, err = capsys.readouterr()
    assert table(out)[0]["runs"] == "2 runs, 0 failed" and "given twice" in err


def _truncate(exp: Path, seed: int) -> Path:
    (path,) = [r.path for r in RunStore(exp).scan()[0] if r.seed == seed]
    path.write_bytes(path.read_bytes()[:200])
    return path


def test_a_damaged_record_is_named_by_leaderboard_and_report(exp, capsys):
    path = _truncate(exp, seed=1)
    capsys.readouterr()
    assert run_cli("leaderboard", exp) == 0
    out, err = capsys.readouterr()
    assert table(out)[0]["runs"] == "1 run, 0 failed"
    assert err.count("\n") == 1 and err.startswith("bench: warning: ")
    assert f"{path} is not a readable run record" in err and "left out" in err
    assert run_cli("leaderboard", exp, "--strict") == 2
    out, err = capsys.readouterr()
    assert str(path) in err and "--strict" in err.splitlines()[-1] and out == ""
    assert run_cli("report", exp, "--out", exp / "r") == 0
    assert str(path) in capsys.readouterr().err
    assert str(path) in (exp / "r" / "index.html").read_text()  # the page says so too
    assert run_cli("report", exp, "--out", exp / "r2", "--strict") == 2
    assert not (exp / "r2").exists()


def test_status_and_run_name_a_damaged_record_and_run_moves_it_aside(exp, trained, capsys,
                                                                     caplog):
    path = _truncate(exp, seed=1)
    damaged = path.read_bytes()
    capsys.readouterr()
    assert run_cli("status", exp) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| cnn +\| +1 \| corrupt record", out) and str(path) in out
    assert "1 done, 1 corrupt record" in out
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", exp, *TINY) == 0
    assert [s.seed for s in trained] == [1]  # recomputed, and only it
    assert "1 already done" in capsys.readouterr().out
    assert f"{path} is not a readable run record" in caplog.text
    assert "will be recomputed" in caplog.text
    (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
    assert aside.read_bytes() == damaged  # moved, never deleted
    records, problems = RunStore(exp).scan()
    assert problems == [] and sorted(r.seed for r in records) == [0, 1]
    assert RunStore(exp).path(trained[0].run_id) == path
