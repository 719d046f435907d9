"""The run record and the result store: schema, migration, identity, integrity.

A record is one dataclass (``bench.record.RunRecord``) with a schema version;
the committed reference records (schema 0) still load; anything that is not a
record is rejected with an error naming its file, and the store never deletes
or silently skips such a file.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from scaleqbench.bench.errors import CorruptRecordError, RecordSchemaError
from scaleqbench.bench.store.record import (
    RUN_COLUMNS,
    SCHEMA_VERSION,
    RunRecord,
    protocol_key,
)
from scaleqbench.bench.store.run_store import (
    load_folders,
    record_path,
    resume_record,
    scan_records,
    write_record,
)
from scaleqbench.bench.spec import PROTOCOL_FIELDS, Protocol, RunSpec

# the reference run committed at 61b9f32, written before records had a schema version
SCHEMA0 = Path(__file__).resolve().parent / "fixtures" / "schema0" / "mnist-res-quick"


def record(method: str = "cnn", seed: int = 0, status: str = "ok", experiment: str = "exp",
           **spec_fields) -> RunRecord:
    spec = RunSpec(method, seed=seed, experiment=experiment, **spec_fields)
    rec = RunRecord.for_spec(spec, status=status, started_at="2026-01-01T00:00:00+00:00")
    if status == "ok":
        rec.set(test_acc=0.5 + 0.1 * seed, eq_err=0.25, params=1000,
                per_size_acc={"8": 0.4, "28": 0.6}, history=[{"epoch": 1, "val_acc": 0.5}])
    else:
        rec.set(error="Traceback ...\nRuntimeError: boom")
    return rec


def test_round_trip_writes_the_schema_version(tmp_path):
    rec = record(method_kwargs=(("width", 2),), epochs=3)
    rec.set(eq_err=float("nan"))  # NaN is not JSON: stored as null, read back as missing
    path = write_record(tmp_path, rec)
    stored = json.loads(path.read_text())
    assert stored["schema_version"] == SCHEMA_VERSION == 3
    assert stored["eq_err"] is None and stored["method"] == "cnn[width=2]"
    back = RunRecord.from_json(path.read_text(), path)
    assert back.path == path and back.eq_err is None
    assert dataclasses.replace(back, eq_err=None) == dataclasses.replace(rec, eq_err=None)
    assert back.spec == rec.spec and back.spec.epochs == 3


def test_schema0_records_load_through_the_migration():
    paths = sorted((SCHEMA0 / "runs").glob("*.json"))
    assert len(paths) == 6
    for path in paths:
        assert "schema_version" not in json.loads(path.read_text())  # schema 0
        rec = RunRecord.from_json(path.read_text(), path)
        assert rec.ok and 0 < rec.test_acc < 1 and rec.experiment == "mnist-res-quick"
        assert rec.run_id == path.stem  # the old id stays the record's id
        assert protocol_key(rec) == (Protocol(), rec.method)  # the quick sweep's defaults
        assert set(rec.equivariance_error) >= {"logits"} and rec.history


def test_a_newer_schema_is_rejected_naming_both_versions(tmp_path):
    data = record().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "runs" / "x.json"
    with pytest.raises(RecordSchemaError) as err:
        RunRecord.from_json(json.dumps(data), path)
    assert str(path) in str(err.value)
    assert f"schema v{SCHEMA_VERSION + 1}" in str(err.value)
    assert f"reads v0 to v{SCHEMA_VERSION}" in str(err.value)


def _as_schema(rec: RunRecord, version: int, **fields) -> dict:
    """``rec`` as an older schema wrote it: schema 1 had no launcher settlement fields (it
    called ``backend_state`` ``slurm_state``), schema 0 no version either."""
    data = {k: v for k, v in rec.to_dict().items()
            if k not in ("settled_by", "end_state", "backend_state")}
    data.update(fields)
    if version == 0:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    return data


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("slurm_state, end_state", [
    ("CANCELLED by 0", "cancelled"), ("TIMEOUT", "timed out"), ("NODE_FAIL", "node failed"),
    ("OUT_OF_MEMORY", "failed"), ("COMPLETED without writing a record", "failed"),
])
def test_a_record_the_slurm_launcher_settled_migrates_to_its_settlement(
        tmp_path, version, slurm_state, end_state):
    """Schema <= 1 wrote ``slurm_state`` only on the failed record of a job that Slurm ended
    without one: the Slurm launcher settled that job, and the state says how it ended."""
    old = _as_schema(record(status="failed"), version, slurm_state=slurm_state, job_id="12_3")
    path = tmp_path / "runs" / "x.json"
    rec = RunRecord.from_json(json.dumps(old), path)
    assert (rec.backend_state, rec.settled_by, rec.end_state) == (slurm_state, "slurm",
                                                                  end_state)
    assert rec.outcome == end_state and rec.job_id == "12_3" and not rec.ok
    stored = json.loads(rec.to_json())  # written back as the current schema
    assert stored["schema_version"] == SCHEMA_VERSION and "slurm_state" not in stored
    assert stored["backend_state"] == slurm_state and stored["end_state"] == end_state


@pytest.mark.parametrize("version", [0, 1])
def test_a_record_no_launcher_settled_migrates_without_settlement(version):
    for status in ("ok", "failed"):
        rec = RunRecord.from_json(json.dumps(_as_schema(record(status=status), version,
                                                        job_id="12_3")), "x.json")
        assert rec.settled_by is rec.end_state is rec.backend_state is None
        assert rec.outcome == ("done" if status == "ok" else "failed")


def test_an_unversioned_record_with_settlement_fields_keeps_them():
    """Before the settlement fields joined the schema, the launcher interface wrote them into
    unversioned (schema-0) records."""
    old = _as_schema(record(status="failed"), 0, job_id="7_0", settled_by="slurm",
                     end_state="timed out", backend_state="TIMEOUT")
    rec = RunRecord.from_json(json.dumps(old), "x.json")
    assert (rec.settled_by, rec.end_state, rec.backend_state) == ("slurm", "timed out",
                                                                  "TIMEOUT")


def _damaged(good: dict) -> dict[str, str]:
    def edited(**changes) -> str:
        return json.dumps({**good, **changes})

    no_id = dict(good)
    del no_id["run_id"]
    text = json.dumps(good, indent=2)
    return {
        "truncated": text[: len(text) // 2],
        "empty": "",
        "a list": json.dumps([good]),
        "no run id": json.dumps(no_id),
        "seed as text": edited(seed="zero"),
        "accuracy as text": edited(test_acc="high"),
        "boolean params": edited(params=True),
        "unknown status": edited(status="maybe"),
        "unknown field": edited(colour="blue"),
        "dataset not its spec's": edited(dataset="stl10"),
        "spec with an unknown field": edited(spec={**good["spec"], "colour": "blue"}),
        "bad version": edited(schema_version="one"),
        "a schema-1 slurm_state not text": edited(schema_version=1, slurm_state=7),
        "slurm_state in the current schema": edited(slurm_state="CANCELLED"),
    }


@pytest.mark.parametrize("case", list(_damaged(record().to_dict())))
def test_what_is_not_a_record_is_rejected_naming_the_file(case, tmp_path):
    path = tmp_path / "runs" / "cnn-s0.json"
    with pytest.raises(CorruptRecordError) as err:
        RunRecord.from_json(_damaged(record().to_dict())[case], path)
    assert str(err.value).startswith(f"{path} is not a readable run record (")


def test_fields_are_checked_when_set_and_written():
    rec = record()
    with pytest.raises(TypeError, match="no field"):
        rec.set(test_accuracy=0.9)  # a typo is not a new field
    rec.seed = "0"
    with pytest.raises(ValueError, match="seed"):
        rec.to_json()  # never write what could not be read back


def test_run_columns_are_record_fields_and_carry_their_values():
    from scaleqbench.bench.report.leaderboard import records_frame

    names = {f.name for f in dataclasses.fields(RunRecord)}
    assert set(RUN_COLUMNS) <= names and {"test_acc", "eq_err", "status"} <= set(RUN_COLUMNS)
    recs = [record(seed=0), record(seed=1, status="failed")]
    df = records_frame(recs)
    for c in RUN_COLUMNS:
        if c in ("seed", "status", "run_id", "method", "experiment", "dataset"):
            assert list(df[c]) == [getattr(r, c) for r in recs], c
    assert df.test_acc.iloc[0] == 0.5 and df.test_acc.isna().iloc[1]


def test_the_experiment_folder_is_not_part_of_a_run_id():
    a, b = RunSpec("cnn", experiment="exp"), RunSpec("cnn", experiment="exp-copy")
    assert a.run_id == b.run_id and a == b
    assert RunSpec("cnn", epochs=2).run_id != RunSpec("cnn", epochs=3).run_id
    assert RunSpec("cnn", seed=1).run_id != a.run_id
    assert RunSpec("cnn", source="torchvision").run_id != a.run_id
    assert RunSpec("cnn", method_kwargs=(("width", 2),)).run_id != a.run_id


def test_every_protocol_field_is_a_spec_field_with_the_same_default():
    spec_defaults = {f.name: f.default for f in dataclasses.fields(RunSpec)}
    for f in dataclasses.fields(Protocol):
        assert spec_defaults[f.name] == f.default, f.name
    assert "seed" not in PROTOCOL_FIELDS and "experiment" not in PROTOCOL_FIELDS


def test_a_protocol_field_absent_from_an_old_record_takes_its_default():
    old = json.loads(sorted((SCHEMA0 / "runs").glob("*.json"))[0].read_text())
    for name in ("limit_train", "limit_eval", "eq_images", "epochs"):
        del old["spec"][name]  # as if these fields had been added after the record was made
    rec = RunRecord.from_json(json.dumps(old), "old.json")
    assert protocol_key(rec).protocol == Protocol()


def test_the_key_separates_what_the_seed_does_not():
    base = protocol_key(record(seed=0))
    assert protocol_key(record(seed=1)) == base
    for change in ({"epochs": 2}, {"source": "torchvision"}, {"limit_train": 100},
                   {"eq_images": 16}, {"method_kwargs": (("width", 2),)}, {"preset": "paper"}):
        assert protocol_key(record(**change)) != base, change


def test_scan_names_every_unreadable_file_and_reads_the_rest(tmp_path):
    for seed in (0, 1, 2):
        write_record(tmp_path, record(seed=seed))
    bad = record_path(tmp_path, record(seed=1).run_id)
    bad.write_text(bad.read_text()[:100])
    records, problems = scan_records(tmp_path)
    assert sorted(r.seed for r in records) == [0, 2]
    assert [p.path for p in problems] == [bad] and str(bad) in str(problems[0])


def test_resume_moves_a_damaged_record_aside_and_keeps_its_bytes(tmp_path, caplog):
    rec = record()
    path = write_record(tmp_path, rec)
    damaged = path.read_text()[:300]
    path.write_text(damaged)
    assert resume_record(tmp_path, rec.run_id) is None  # the run is to be recomputed
    assert not path.exists()
    moved = list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_text() == damaged
    assert "moved to" in caplog.text and "will be recomputed" in caplog.text
    assert str(path) in caplog.text


def test_a_newer_record_is_never_moved_or_replaced(tmp_path):
    rec = record()
    path = write_record(tmp_path, rec)
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(RecordSchemaError):
        resume_record(tmp_path, rec.run_id)
    with pytest.raises(RecordSchemaError):
        write_record(tmp_path, rec)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION + 1


def test_writing_over_a_damaged_record_moves_it_aside_first(tmp_path):
    rec = record()
    path = write_record(tmp_path, rec)
    path.write_text("{")
    write_record(tmp_path, rec)
    assert RunRecord.from_json(path.read_text(), path).ok
    assert [p.read_text() for p in path.parent.glob("*.corrupt-*")] == ["{"]


def test_a_run_in_several_folders_counts_once(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for seed in (0, 1):
        write_record(a, record(seed=seed))
    write_record(b, record(seed=0, status="failed"))  # a stale copy of seed 0
    write_record(b, record(seed=2))
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
    write_record(tmp_path, again)
    found = load_folders([tmp_path])
    assert [r.test_acc for r in found.records] == [0.9]
    assert found.notes and "counted once" in found.notes[0]


def test_a_schema_2_record_keeps_its_ideal_error_and_has_no_other_operator():
    """Schema 2 measured the ``ideal`` operator only: after the migration its error reads as
    before, and the operators schema 3 added read as not measured (not as copies of it)."""
    rec = record(status="ok").set(equivariance_error={"block1": {"14": 0.25}}, eq_err=0.25)
    data = {k: v for k, v in rec.to_dict().items()
            if k not in ("equivariance_error_ops", "eq_err_scale_shift", "scale_shift_left_out")}
    data["schema_version"] = 2
    back = RunRecord.from_json(json.dumps(data), "x.json")
    assert back.equivariance_error == {"block1": {"14": 0.25}} and back.eq_err == 0.25
    assert back.equivariance_error_ops == {} and back.eq_err_scale_shift is None
    assert back.scale_shift_left_out == {}
    assert json.loads(back.to_json())["schema_version"] == SCHEMA_VERSION == 3
