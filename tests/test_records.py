"""The run record's schema and migration: run ids of specs and committed records, the schema
version written and read, and what the migration of each older schema infers and says it
cannot know (in ``provenance``).

The committed records (schema 0 and 3) still load and keep their run ids. (Integrity of
records: tests/test_record_integrity.py; the store: tests/test_record_store.py; the run
identity of resolved specs and stale records: tests/test_identity.py.)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from scaleqbench.bench.errors import RecordSchemaError
from scaleqbench.bench.store.record import SCHEMA_VERSION, RunRecord, protocol_key
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.spec import Protocol, RunSpec

from records_support import _as_v3, record, REFERENCE, SCHEMA0


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


def test_the_committed_reference_run_is_todays_schema_and_computes_its_run_ids():
    folder = Path(__file__).resolve().parents[1] / "results" / "reference" / "mnist-res-quick"
    paths = sorted((folder / "runs").glob("*.json"))
    assert len(paths) == 36
    for path in paths:
        assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
        rec = RunRecord.from_json(path.read_text(), path)
        assert rec.ok and rec.spec.run_id == rec.run_id == path.stem
    sweep = json.loads((folder / "sweep.json").read_text())["runs"]
    assert sorted(RunSpec.from_json(d).run_id for d in sweep) == [p.stem for p in paths]


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
