"""The run spec a record holds: its protocol and fields, its one JSON form read back, what is
not a spec refused saying why, and what separates one run's key from another.
"""

from __future__ import annotations

import json

import pytest

from scaleqbench.bench.store.record import RunRecord, protocol_key
from scaleqbench.bench.spec import PROTOCOL_FIELDS, Protocol, RunSpec

from records_support import record, SCHEMA0


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
