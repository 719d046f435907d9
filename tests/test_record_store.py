"""The result store (``RunStore``) with damaged and repeated records: scan names every
unreadable file, damaged records are moved aside with their bytes and never deleted, newer
records are never replaced, a run counts once, and a launch decision reads each record once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scaleqbench.bench.errors import CorruptRecordError, RecordSchemaError
from scaleqbench.bench.store.record import SCHEMA_VERSION, RunRecord
from scaleqbench.bench.store.collection import load_folders
from scaleqbench.bench.store.run_store import RunStore

from records_support import record, SCHEMA0


def test_scan_names_every_unreadable_file_and_reads_the_rest(tmp_path):
    store = RunStore(tmp_path)
    for seed in (0, 1, 2):
        store.write(record(seed=seed))
    bad = store.path(record(seed=1).run_id)
    bad.write_text(bad.read_text()[:100])
    records, problems = store.scan()
    assert sorted(r.seed for r in records) == [0, 2]
    assert [p.path for p in problems] == [bad] and str(bad) in str(problems[0])


def test_resume_moves_a_damaged_record_aside_and_keeps_its_bytes(tmp_path, caplog):
    rec, store = record(), RunStore(tmp_path)
    path = store.write(rec)
    damaged = path.read_text()[:300]
    path.write_text(damaged)
    with pytest.raises(CorruptRecordError):
        store.read(rec.run_id)
    assert store.current(rec.run_id) is None and path.exists()  # named elsewhere, kept
    assert store.resume(rec.run_id) is None  # the run is to be recomputed
    assert not path.exists()
    moved = list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_text() == damaged
    assert "moved to" in caplog.text and "will be recomputed" in caplog.text
    assert str(path) in caplog.text


def test_a_newer_record_is_never_moved_or_replaced(tmp_path):
    rec, store = record(), RunStore(tmp_path)
    path = store.write(rec)
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(RecordSchemaError):
        store.resume(rec.run_id)
    with pytest.raises(RecordSchemaError):
        store.write(rec)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION + 1


def test_writing_over_a_damaged_record_moves_it_aside_first(tmp_path):
    rec, store = record(), RunStore(tmp_path)
    path = store.write(rec)
    path.write_text("{")
    store.write(rec)
    assert RunRecord.from_json(path.read_text(), path).ok
    assert [p.read_text() for p in path.parent.glob("*.corrupt-*")] == ["{"]


def test_a_run_in_several_folders_counts_once(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for seed in (0, 1):
        RunStore(a).write(record(seed=seed))
    RunStore(b).write(record(seed=0, status="failed"))  # a stale copy of seed 0
    RunStore(b).write(record(seed=2))
    found = load_folders([a, b, a])
    assert sorted(r.seed for r in found.records) == [0, 1, 2]
    assert next(r for r in found.records if r.seed == 0).ok  # the finished copy counts
    assert any("given twice" in n for n in found.notes)
    assert any(f"1 run(s) of {b} are also in {a}" in n for n in found.notes)
    # a failed first copy gives way to a later finished one
    found = load_folders([b, a])
    assert next(r for r in found.records if r.seed == 0).ok
    assert sum(len(f.records) for f in found.folders) == 3


def test_an_old_record_and_its_recomputation_count_once(tmp_path):
    """A schema-0 record's id hashed its folder name; recomputed today the same run gets
    another id, yet both are one run of the leaderboard (the later one counts)."""
    old_path = sorted((SCHEMA0 / "runs").glob("cnn-*.json"))[0]
    (tmp_path / "runs").mkdir()
    shutil.copy(old_path, tmp_path / "runs" / old_path.name)
    old = RunRecord.from_json(old_path.read_text(), old_path)
    again = RunRecord.for_spec(old.spec, status="ok", test_acc=0.9,
                               finished_at="2099-01-01T00:00:00+00:00")
    assert again.run_id != old.run_id
    RunStore(tmp_path).write(again)
    found = load_folders([tmp_path])
    assert [r.test_acc for r in found.records] == [0.9]
    assert found.notes and "counted once" in found.notes[0]


def test_a_launch_decision_reads_each_record_once(tmp_path, monkeypatch, caplog):
    """``bench run`` decides what to launch under the experiment lock from one read of each
    run's record: what is done, what is to run, and which damaged file to move aside."""
    from scaleqbench.bench.launch.sweep import plan_launch, save_sweep

    store = RunStore(tmp_path)
    specs = [record(seed=seed).spec for seed in range(4)]
    store.write(record(seed=0))  # done
    store.write(record(seed=1, status="failed"))  # to retry
    damaged = store.write(record(seed=2))
    damaged.write_text(damaged.read_text().replace('"test_acc": 0.7', '"test_acc": 7.0'))
    save_sweep(tmp_path, specs, launcher="local")  # seed 3: never run
    reads: list[Path] = []
    real = RunStore.read_file

    def counted(path):
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(RunStore, "read_file", staticmethod(counted))
    plan = plan_launch(tmp_path, specs, "local", retry_failed=True)
    assert [s.seed for s in plan.todo] == [1, 2, 3] and (plan.done, plan.active) == (1, 0)
    assert sorted(reads) == sorted(store.path(s.run_id) for s in specs)  # each once
    assert not damaged.exists() and list(damaged.parent.glob("*.corrupt-*"))
    assert "test_acc is 7.0" in caplog.text and "will be recomputed" in caplog.text
    reads.clear()
    plan = plan_launch(tmp_path, specs, "local", retry_failed=False)
    assert [s.seed for s in plan.todo] == [2, 3] and plan.done == 2 and len(reads) == 4
