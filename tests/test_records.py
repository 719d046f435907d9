"""The run record and the result store: schema, migration, identity, integrity.

A record is one dataclass (``bench.store.record.RunRecord``) holding its spec, with a
schema version; the committed records (schema 0 and 3) still load and keep their run
ids, with what the migration infers and what it cannot know said in ``provenance``;
anything that is not a record (a value out of its range included) is rejected with an
error naming its file, and the store never deletes or silently skips such a file.
(The run identity of resolved specs and stale records: tests/test_identity.py.)
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
from scaleqbench.bench.store.collection import load_folders
from scaleqbench.bench.store.run_store import RunStore
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


# the reference run the repository holds (schema 3; read through the migration, never rewritten)
REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "mnist-res-quick"

#: run ids that scaleqbench computed for these specs, never resolved (made by hand, or read
#: from an earlier schema's record): such a spec keeps its id whatever the code (a changed id
#: would make every resumed sweep recompute its finished runs; the resolved scheme is pinned
#: in tests/test_identity.py)
KNOWN_IDS = [
    ({"method": "cnn"}, "cnn-s0-fcfa6ba457c1"),
    ({"method": "cnn", "seed": 3}, "cnn-s3-5aa12d4737c2"),
    ({"method": "cnn", "epochs": 2, "limit_train": 40, "limit_eval": 20, "eq_images": 4},
     "cnn-s0-d0a0bb4ac21c"),
    ({"method": "fourier", "method_kwargs": {"impl": "reference", "width": 2}, "input": "pad"},
     "fourier-s0-97033157f960"),
    ({"method": "cnn", "method_kwargs": {"channels": [4, 8, 12]}, "dataset": "mnist-scale",
      "source": "torchvision", "preset": "paper", "seed": 1}, "cnn-s1-095e314779db"),
    ({"method": "timm:resnet18", "input": "upsample", "experiment": "x", "device": "cpu",
      "data_root": "/d", "cache_dir": "/c"}, "timm_resnet18-s0-60756e925846"),
    # the schema-0 reference specs (their records keep the ids they were written under, which
    # hashed the folder name too)
    ({"method": "cnn", "experiment": "mnist-res-quick"}, "cnn-s0-fcfa6ba457c1"),
    ({"method": "dss", "experiment": "mnist-res-quick"}, "dss-s0-7876a261d2f6"),
    ({"method": "dss_scalar", "experiment": "mnist-res-quick"}, "dss_scalar-s0-30d8eab5b688"),
    ({"method": "fourier", "experiment": "mnist-res-quick"}, "fourier-s0-55d605f798ea"),
    ({"method": "sesn", "experiment": "mnist-res-quick"}, "sesn-s0-a61210c8e980"),
    ({"method": "sesn_vector", "experiment": "mnist-res-quick"}, "sesn_vector-s0-dcc6faa0ed0d"),
]


@pytest.mark.parametrize("fields, run_id", KNOWN_IDS, ids=[i for _, i in KNOWN_IDS])
def test_a_spec_keeps_its_run_id(fields, run_id):
    assert RunSpec.from_json(fields).run_id == run_id


def test_every_committed_record_and_sweep_computes_its_own_run_id():
    paths = sorted((REFERENCE / "runs").glob("*.json"))
    assert len(paths) == 12
    for path in paths:
        rec = RunRecord.from_json(path.read_text(), path)
        assert rec.spec.run_id == rec.run_id == path.stem
    sweep = json.loads((REFERENCE / "sweep.json").read_text())["runs"]
    assert sorted(RunSpec.from_json(d).run_id for d in sweep) == [p.stem for p in paths]
    computed = {i for _, i in KNOWN_IDS}
    for path in sorted((SCHEMA0 / "runs").glob("*.json")):
        rec = RunRecord.from_json(path.read_text(), path)
        assert rec.run_id == path.stem and rec.spec.run_id in computed
    sweep = json.loads((SCHEMA0 / "sweep.json").read_text())["runs"]
    assert {RunSpec.from_json(d).run_id for d in sweep} <= computed


def _as_v3(rec: RunRecord) -> dict:
    """``rec`` as schema 3 wrote it: the spec flat, and its fields copied beside it."""
    data = rec.to_dict()
    spec = data["spec"]
    data["spec"] = {**{k: v for k, v in spec.items() if k != "protocol"}, **spec["protocol"]}
    data.update(schema_version=3, **{k: getattr(rec, k) for k in (
        "experiment", "method", "method_name", "method_kwargs", "dataset", "source", "seed",
        "preset", "input")})
    return json.loads(json.dumps(data))


def test_round_trip_writes_the_schema_version(tmp_path):
    rec = record(method_kwargs=(("width", 2),), epochs=3)
    rec.set(eq_err=float("nan"))  # NaN is not JSON: stored as null, read back as missing
    path = RunStore(tmp_path).write(rec)
    stored = json.loads(path.read_text())
    assert stored["schema_version"] == SCHEMA_VERSION == 5
    assert stored["eq_err"] is None and rec.method == "cnn[width=2]"
    assert stored["spec"]["protocol"]["epochs"] == 3 and stored["spec"]["method"] == "cnn"
    # the spec's fields are stored once, in the spec
    assert not {"method", "method_name", "dataset", "seed", "input", "experiment"} & set(stored)
    back = RunRecord.from_json(path.read_text(), path)
    assert back.path == path and back.eq_err is None
    assert dataclasses.replace(back, eq_err=None) == dataclasses.replace(rec, eq_err=None)
    assert back.spec == rec.spec and back.spec.epochs == 3 and back.method == "cnn[width=2]"


def test_the_spec_fields_read_through_the_record():
    rec = record(seed=2, source="torchvision", input="pad", method_kwargs=(("width", 2),))
    assert (rec.method, rec.method_name, rec.method_kwargs) == ("cnn[width=2]", "cnn",
                                                                {"width": 2})
    assert (rec.dataset, rec.source, rec.seed, rec.preset, rec.input, rec.experiment) == (
        "mnist-res", "torchvision", 2, "quick", "pad", "exp")
    assert rec.spec.protocol == Protocol(source="torchvision", input="pad")


def test_a_schema_3_record_reads_as_the_same_record():
    rec = record(method_kwargs=(("width", 2),), epochs=3, input="pad")
    back = RunRecord.from_json(json.dumps(_as_v3(rec)), "x.json")
    assert back.spec == rec.spec and back.experiment == "exp"
    # the migration says what it could not know (this record names no config, nor recipe)
    assert back.provenance == {"migrated_from_schema": 3, "inferred": [], "unknown": [
        "the scaleqbench version that made it", "method_source", "config_values", "recipe"]}
    assert dataclasses.replace(back, path=None, provenance=None) == rec
    stored = json.loads(back.to_json())  # written back as the current schema
    assert stored["schema_version"] == SCHEMA_VERSION and "dataset" not in stored


def test_the_committed_records_are_read_not_rewritten():
    for folder in (SCHEMA0, REFERENCE):
        before = {p: p.read_bytes() for p in (folder / "runs").glob("*.json")}
        records, problems = RunStore(folder).scan()
        assert len(records) == len(before) and not problems
        assert all(0 < r.test_acc < 1 and r.ok for r in records)
        assert {p: p.read_bytes() for p in (folder / "runs").glob("*.json")} == before


def test_schema0_records_load_through_the_migration():
    paths = sorted((SCHEMA0 / "runs").glob("*.json"))
    assert len(paths) == 6
    for path in paths:
        assert "schema_version" not in json.loads(path.read_text())  # schema 0
        rec = RunRecord.from_json(path.read_text(), path)
        assert rec.ok and 0 < rec.test_acc < 1 and rec.experiment == "mnist-res-quick"
        assert rec.run_id == path.stem  # the old id stays the record's id (it hashed the folder)
        assert rec.spec.experiment == "mnist-res-quick"
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
    data = {k: v for k, v in _as_v3(rec).items()
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

    def in_spec(**changes) -> str:
        return edited(spec={**good["spec"], **changes})

    def in_protocol(**changes) -> str:
        return in_spec(protocol={**good["spec"]["protocol"], **changes})

    no_id = dict(good)
    del no_id["run_id"]
    text = json.dumps(good, indent=2)
    old = _as_v3(record())
    return {
        "truncated": text[: len(text) // 2],
        "empty": "",
        "a list": json.dumps([good]),
        "no run id": json.dumps(no_id),
        "no spec": edited(spec=None),
        "seed as text": in_spec(seed="zero"),
        "negative seed": in_spec(seed=-1),
        "spec without a method": edited(spec={k: v for k, v in good["spec"].items()
                                              if k != "method"}),
        "epochs as text": in_protocol(epochs="two"),
        "negative eq_images": in_protocol(eq_images=-4),
        "unresolved input policy": in_protocol(input="published"),
        "protocol both nested and flat": in_spec(dataset="stl10"),
        "accuracy as text": edited(test_acc="high"),
        "accuracy of 500 %": edited(test_acc=5.0),
        "negative accuracy": edited(val_acc=-0.1),
        "a size's accuracy above 1": edited(per_size_acc={"8": 0.4, "28": 1.5}),
        "a size's accuracy as text": edited(per_size_acc={"8": "high"}),
        "consistency above 1": edited(scale_consistency=2.0),
        "negative error": edited(eq_err=-0.25),
        "negative layer error": edited(equivariance_error={"logits": {"8": -1e-3}}),
        "negative count": edited(params=-1000),
        "negative split size": edited(split_sizes={"train": -5}),
        "negative time": edited(train_time_s=-1.0),
        "boolean params": edited(params=True),
        "unknown status": edited(status="maybe"),
        "unknown field": edited(colour="blue"),
        "a copy of a spec field": edited(dataset="mnist-res"),
        "schema 3: dataset not its spec's": json.dumps({**old, "dataset": "stl10"}),
        "schema 3: seed not its spec's": json.dumps({**old, "seed": 3}),
        "schema 3: label not its spec's": json.dumps({**old, "method": "cnn[width=9]"}),
        "spec with an unknown field": in_spec(colour="blue"),
        "bad version": edited(schema_version="one"),
        "a schema-1 slurm_state not text": json.dumps({**old, "schema_version": 1,
                                                       "slurm_state": 7}),
        "slurm_state in the current schema": edited(slurm_state="CANCELLED"),
    }


@pytest.mark.parametrize("case", list(_damaged(record().to_dict())))
def test_what_is_not_a_record_is_rejected_naming_the_file(case, tmp_path):
    path = tmp_path / "runs" / "cnn-s0.json"
    with pytest.raises(CorruptRecordError) as err:
        RunRecord.from_json(_damaged(record().to_dict())[case], path)
    assert str(err.value).startswith(f"{path} is not a readable run record (")


@pytest.mark.parametrize("field, value", [("test_acc", 1.0), ("test_acc", 0), ("eq_err", 0.0),
                                          ("eq_err", 1e6), ("params", 0),
                                          ("per_size_acc", {"8": None, "28": 1.0})])
def test_values_at_the_ends_of_their_range_are_records(field, value):
    rec = record().set(**{field: value})
    assert getattr(RunRecord.from_json(rec.to_json(), "x.json"), field) == value


def test_a_hand_edited_accuracy_is_named_and_set_aside_never_shown(tmp_path, caplog):
    store = RunStore(tmp_path)
    kept, edited = record(seed=0), record(seed=1)
    store.write(kept)
    path = store.write(edited)
    data = json.loads(path.read_text())
    data["test_acc"] = 5.0  # 500 %
    path.write_text(json.dumps(data))
    records, problems = store.scan()
    assert [r.seed for r in records] == [0]
    assert [p.path for p in problems] == [path] and "test_acc is 5.0" in str(problems[0])
    assert store.resume(edited.run_id) is None  # the run is to be recomputed
    assert [p.read_text() for p in path.parent.glob("*.corrupt-*")] == [json.dumps(data)]


def test_fields_are_checked_when_set_and_written():
    rec = record()
    with pytest.raises(TypeError, match="no field"):
        rec.set(test_accuracy=0.9)  # a typo is not a new field
    rec.params = "many"
    with pytest.raises(ValueError, match="params"):
        rec.to_json()  # never write what could not be read back
    rec = record().set(test_acc=5.0)
    with pytest.raises(ValueError, match="test_acc is 5.0"):
        rec.to_json()
    with pytest.raises(AttributeError):
        rec.seed = 1  # the spec's: a record of another seed is another run


def test_run_columns_are_record_fields_and_carry_their_values():
    from scaleqbench.bench.report.leaderboard import records_frame

    names = {f.name for f in dataclasses.fields(RunRecord)}
    spec_columns = {"experiment", "method", "dataset", "source", "seed", "preset", "input"}
    assert set(RUN_COLUMNS) - spec_columns <= names
    assert spec_columns <= set(RUN_COLUMNS) and not spec_columns & names  # read from the spec
    assert {"test_acc", "eq_err", "status"} <= set(RUN_COLUMNS)
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


def test_a_spec_holds_its_protocol_and_reads_its_fields_through_it():
    spec = RunSpec("cnn", seed=1, epochs=2, input="pad")
    assert spec == RunSpec("cnn", protocol=Protocol(epochs=2, input="pad"), seed=1)
    assert spec.protocol == Protocol(epochs=2, input="pad")
    for name in PROTOCOL_FIELDS:
        assert getattr(spec, name) == getattr(spec.protocol, name), name
    assert RunSpec("cnn").protocol == Protocol()
    assert "seed" not in PROTOCOL_FIELDS and "experiment" not in PROTOCOL_FIELDS
    with pytest.raises(TypeError):
        RunSpec("cnn", protocol=Protocol(), epochs=2)  # one or the other
    with pytest.raises(TypeError):
        RunSpec("cnn", colour="blue")


@pytest.mark.parametrize("spec", [
    RunSpec("cnn"),
    RunSpec("fourier", seed=4, method_kwargs={"impl": "reference", "width": 2}, input="pad",
            epochs=3, limit_train=40, limit_eval=20, eq_images=4, experiment="e",
            data_root="/d", cache_dir="/c", device="cpu"),
    RunSpec("cnn", method_kwargs={"channels": (4, 8, 12)}, source="torchvision",
            dataset="mnist-scale", preset="paper"),
], ids=["default", "every-field", "tuple-option"])
def test_a_spec_has_one_json_form_and_reads_it_back(spec):
    data = spec.to_json()
    assert json.loads(json.dumps(data)) == data  # plain JSON: lists, not tuples
    assert set(data["protocol"]) == set(PROTOCOL_FIELDS)
    back = RunSpec.from_json(data)
    assert back == spec and back.run_id == spec.run_id and hash(back) == hash(spec)
    assert (back.experiment, back.data_root, back.cache_dir, back.device) == (
        spec.experiment, spec.data_root, spec.cache_dir, spec.device)
    flat = {**{k: v for k, v in data.items() if k != "protocol"}, **data["protocol"]}
    assert RunSpec.from_json(flat) == back  # the form of earlier versions


@pytest.mark.parametrize("data, message", [
    ([], "an object"), ({}, "method"), ({"method": "cnn", "colour": 1}, "colour"),
    ({"method": "cnn", "protocol": {"colour": 1}}, "colour"),
    ({"method": "cnn", "protocol": []}, "not an object"),
    ({"method": "cnn", "protocol": {}, "dataset": "x"}, "both"),
    ({"method": "cnn", "seed": "0"}, "seed"), ({"method": "cnn", "seed": -1}, ">= 0"),
    ({"method": "cnn", "epochs": 2.5}, "epochs"), ({"method": 3}, "method"),
    ({"method": "cnn", "method_kwargs": [1, 2]}, "method_kwargs"),
    ({"method": "cnn", "input": "published"}, "resolve"),
])
def test_what_is_not_a_spec_is_refused_saying_why(data, message):
    with pytest.raises(ValueError, match=message):
        RunSpec.from_json(data)


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


def _as_v4(rec: RunRecord) -> dict:
    """``rec`` as schema 4 wrote it: no config values, method source nor provenance."""
    data = {k: v for k, v in rec.to_dict().items()
            if k not in ("config_values", "method_source", "provenance")}
    return {**data, "schema_version": 4}


def test_a_schema_4_record_gets_its_config_values_inferred_and_says_what_is_unknown():
    from scaleqbench import methods

    recipe = {"optimizer": "adam", "lr": 0.005, "epochs": 8}
    rec = record(method_kwargs=(("hidden", 64),)).set(config="quick", recipe=recipe)
    back = RunRecord.from_json(json.dumps(_as_v4(rec)), "x.json")
    assert back.config_values == {**methods.get_method("cnn").config("quick"), "hidden": 64}
    assert back.recipe == recipe  # recorded by the run: known, not inferred
    assert back.provenance == {
        "migrated_from_schema": 4,
        "inferred": ["config_values (this installation's registry and the options)"],
        "unknown": ["the scaleqbench version that made it", "method_source"]}
    assert back.run_id == rec.run_id and back.spec.resolved is None  # nothing recomputed
    assert back.test_acc == rec.test_acc and back.method_source is None
    # a method this installation does not have: its config values cannot be known either
    gone = record(method="not_installed").set(config="quick", recipe=recipe)
    back = RunRecord.from_json(json.dumps(_as_v4(gone)), "y.json")
    assert back.config_values is None and "config_values" in back.provenance["unknown"]
    # the current schema is written back, and read as it was
    again = RunRecord.from_json(back.to_json(), "y.json")
    assert again.provenance == back.provenance and json.loads(back.to_json())[
        "schema_version"] == SCHEMA_VERSION


def test_a_schema_2_record_keeps_its_ideal_error_and_has_no_other_operator():
    """Schema 2 measured the ``ideal`` operator only: after the migration its error reads as
    before, and the operators schema 3 added read as not measured (not as copies of it)."""
    rec = record(status="ok").set(equivariance_error={"block1": {"14": 0.25}}, eq_err=0.25)
    data = {k: v for k, v in _as_v3(rec).items()
            if k not in ("equivariance_error_ops", "eq_err_scale_shift", "scale_shift_left_out")}
    data["schema_version"] = 2
    back = RunRecord.from_json(json.dumps(data), "x.json")
    assert back.equivariance_error == {"block1": {"14": 0.25}} and back.eq_err == 0.25
    assert back.equivariance_error_ops == {} and back.eq_err_scale_shift is None
    assert back.scale_shift_left_out == {}
    assert json.loads(back.to_json())["schema_version"] == SCHEMA_VERSION == 5


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
