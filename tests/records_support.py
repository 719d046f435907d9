"""Records for the record and store tests: the committed reference runs, a record built from
a spec, and the damaged files that are not records.
"""

from __future__ import annotations

import json
from pathlib import Path

from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.spec import RunSpec


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


# the reference run of version 0.1.0 (schema 3; read through the migration, never rewritten)
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "schema3"


def _as_v3(rec: RunRecord) -> dict:
    """``rec`` as schema 3 wrote it: the spec flat, and its fields copied beside it."""
    data = rec.to_dict()
    spec = data["spec"]
    data["spec"] = {**{k: v for k, v in spec.items() if k != "protocol"}, **spec["protocol"]}
    data.update(schema_version=3, **{k: getattr(rec, k) for k in (
        "experiment", "method", "method_name", "method_kwargs", "dataset", "source", "seed",
        "preset", "input")})
    return json.loads(json.dumps(data))


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
