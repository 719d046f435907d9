"""The run record: one dataclass, the only place that knows what a record holds.

A record is what one run leaves behind (``<experiment>/runs/<run-id>.json``):
the spec it ran, where and when, every metric, and how it failed if it did.
:meth:`RunRecord.to_json` writes the current schema (:data:`SCHEMA_VERSION`);
:meth:`RunRecord.from_json` reads it and every older schema through
:data:`MIGRATIONS`, and rejects anything else with an error naming the file.

:func:`protocol_key` is the leaderboard key: a run's protocol (every
:class:`~bench.spec.Protocol` field) and its method with options, the seed
left out. Runs that share a key are seeds of one result; runs that differ in
anything else never share a row.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from scaleqbench.bench.errors import CorruptRecordError, RecordSchemaError
from scaleqbench.bench.store.end_states import classify
from scaleqbench.bench.spec import Protocol, RunSpec, base_method

__all__ = ["MIGRATIONS", "NUMERIC_COLUMNS", "RUN_COLUMNS", "SCHEMA_VERSION", "ProtocolKey",
           "RunRecord", "protocol_key", "run_identity"]

#: the schema :meth:`RunRecord.to_json` writes; 0 is the unversioned format of scaleqbench <= 0.1
SCHEMA_VERSION = 3


def _field(default: Any = None, *, column: bool = False, factory: Callable[[], Any] | None = None,
           stored: bool = True) -> Any:
    """A record field. ``column``: a flat leaderboard column (:data:`RUN_COLUMNS`);
    ``stored``: written to the JSON file (the file's own path is not)."""
    meta = {"column": column, "stored": stored}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta, compare=stored)


@dataclass
class RunRecord:
    """Everything one run records. Build one with :meth:`for_spec`, fill it with :meth:`set`."""

    # what ran: the spec, and its fields flat for readers of the JSON
    run_id: str = _field(column=True)
    spec: RunSpec = _field()
    experiment: str = _field(column=True)  # the folder it was launched into; not its identity
    method: str = _field(column=True)  # the label, options included: fourier[impl=reference]
    method_name: str = _field()  # the registry name
    method_kwargs: dict[str, Any] = _field(factory=dict)
    dataset: str = _field(column=True)
    source: str = _field(column=True)
    seed: int = _field(column=True)
    preset: str = _field(column=True)
    input: str = _field("native", column=True)  # the concrete input policy (older: native)
    # how it ended
    status: str = _field("failed", column=True)  # ok | failed
    error: str | None = _field(column=True)  # the traceback or the launcher's reason
    failed_epoch: int | None = _field()  # where a non-finite loss stopped training
    started_at: str | None = _field()
    finished_at: str | None = _field()
    wall_time_s: float | None = _field()
    # where: software, machine, launcher
    versions: dict[str, str] = _field(factory=dict)
    device: str | None = _field(column=True)
    threads: int | None = _field()  # CPU results depend on it (summation order)
    command: str | list[str] | None = _field()
    job_id: str | None = _field()  # the launcher's job that ran it (None: run in-process)
    log: str | None = _field()
    log_err: str | None = _field()
    hostname: str | None = _field()
    slurm_restarts: int | None = _field()
    # set when a launcher recorded a job that ended without writing its record (bench.settle)
    settled_by: str | None = _field()  # that launcher's name
    end_state: str | None = _field()  # how the job ended, one of launch_api.ENDED
    backend_state: str | None = _field()  # the backend's own words, e.g. "CANCELLED by 0"
    # training
    config: str | None = _field()
    epochs: int | None = _field()  # trained (the recipe's, or the spec's override)
    recipe: dict[str, Any] | None = _field()
    params: int | None = _field(column=True)
    dataset_cache: str | None = _field()
    dataset_meta: dict[str, Any] = _field(factory=dict)
    split_sizes: dict[str, int] = _field(factory=dict)
    val_acc: float | None = _field(column=True)
    best_epoch: int | None = _field()
    history: list[dict[str, Any]] = _field(factory=list)
    train_time_s: float | None = _field(column=True)
    train_img_per_s: float | None = _field(column=True)
    resumed_from_epoch: int | None = _field()
    checkpoint: str | None = _field()
    # evaluation
    test_acc: float | None = _field(column=True)
    per_size_acc: dict[str, float | None] = _field(factory=dict)
    infer_img_per_s: float | None = _field(column=True)
    scale_consistency: float | None = _field(column=True)
    # the same with BatchNorm statistics re-estimated per test size (native input, BN models,
    # several sizes; bench.precise_bn); None where that does not apply
    test_acc_recal: float | None = _field(column=True)
    per_size_acc_recal: dict[str, float | None] | None = _field()
    scale_consistency_recal: float | None = _field(column=True)
    bn_recal: dict[str, Any] | None = _field()  # images per size, the sizes recalibrated
    equivariance_error: dict[str, dict[str, float | None]] = _field(factory=dict)
    eq_err: float | None = _field(column=True)
    logit_inv_err: float | None = _field(column=True)
    eq_note: str | None = _field()  # why no equivariance error was measured
    # the same error under the other operators of bench.metrics ({operator: {layer: {size}}};
    # bench run records "scale-shift"), its summary and the slices it left out per layer/size
    equivariance_error_ops: dict[str, dict[str, dict[str, float | None]]] = _field(factory=dict)
    eq_err_scale_shift: float | None = _field(column=True)
    scale_shift_left_out: dict[str, dict[str, int]] = _field(factory=dict)
    peak_mem_mb: float | None = _field(column=True)
    # the file it was read from or written to (not stored in it)
    path: Path | None = _field(stored=False)

    @classmethod
    def for_spec(cls, spec: RunSpec, **facts: Any) -> RunRecord:
        """A (so far failed) record of ``spec``; ``facts`` fill further fields."""
        record = cls(run_id=spec.run_id, spec=spec, experiment=spec.experiment,
                     method=spec.label, method_name=spec.method,
                     method_kwargs=dict(spec.method_kwargs), dataset=spec.dataset,
                     source=spec.source, seed=spec.seed, preset=spec.preset,
                     input=spec.input)
        record.set(**facts)
        return record

    def set(self, **facts: Any) -> RunRecord:
        """Fill fields by name; a name that is not a field is a bug, not a new field."""
        unknown = sorted(set(facts) - set(_STORED))
        if unknown:
            raise TypeError(f"RunRecord has no field(s) {', '.join(unknown)}")
        for name, value in facts.items():
            setattr(self, name, value)
        return self

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def outcome(self) -> str:
        """The run's final state: ``done``, or how it failed (one of launch_api.ENDED)."""
        return "done" if self.ok else (self.end_state or "failed")

    @property
    def last_error_line(self) -> str:
        """The last line of :attr:`error` (a traceback's exception), "" when there is none."""
        lines = (self.error or "").strip().splitlines()
        return lines[-1] if lines else ""

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, ``schema_version`` first (NaN/inf become null)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for name in _STORED:
            value = getattr(self, name)
            out[name] = value.to_dict() if isinstance(value, RunSpec) else value
        return _clean(out)

    def to_json(self) -> str:
        data = self.to_dict()
        # never write a record that this module would refuse to read back
        problem = _problem({k: v for k, v in data.items() if k != "schema_version"})
        if problem:
            raise ValueError(f"run record {self.run_id} is malformed: {problem}")
        return json.dumps(data, indent=2, default=_json_default) + "\n"

    @classmethod
    def from_json(cls, text: str, path: str | Path) -> RunRecord:
        """Read a record of any known schema; :class:`CorruptRecordError` names ``path`` when
        it is not one (:class:`RecordSchemaError` for a schema newer than this code reads)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CorruptRecordError(path, f"truncated or not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CorruptRecordError(path, f"a JSON {type(data).__name__}, not an object")
        version = data.pop("schema_version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise CorruptRecordError(path, f"schema_version {version!r} is not a version")
        if version > SCHEMA_VERSION:
            raise RecordSchemaError(path, f"schema v{version}, and this scaleqbench reads v0 to "
                                          f"v{SCHEMA_VERSION}; upgrade scaleqbench to read it")
        for v in range(version, SCHEMA_VERSION):
            data = MIGRATIONS[v](data)
        problem = _problem(data)
        if problem:
            raise CorruptRecordError(path, problem)
        data["spec"] = RunSpec.from_dict(data["spec"])
        data.setdefault("input", data["spec"].input)
        for name in _FLOATS:  # JSON writes 3.0 as 3; the field is a float
            if isinstance(data.get(name), int):
                data[name] = float(data[name])
        return cls(**data, path=Path(path))


# ---- the schema, derived from the dataclass -------------------------------------------------

_HINTS = typing.get_type_hints(RunRecord)
_STORED = tuple(f.name for f in fields(RunRecord) if f.metadata["stored"])
_REQUIRED = ("run_id", "spec", "experiment", "method", "method_name", "dataset", "source",
             "seed", "preset")


def _types(hint: Any) -> tuple[type, ...]:
    """The JSON value types a field's annotation accepts (``spec``: its dict form)."""
    if hint is RunSpec:
        return (dict,)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _types(arg))
    if hint is type(None):
        return (type(None),)
    if hint is Any:
        return (object,)
    origin = typing.get_origin(hint) or hint
    return (int, float) if origin is float else (origin,)


_ACCEPTS = {name: _types(_HINTS[name]) for name in _STORED}
_FLOATS = tuple(name for name in _STORED if float in _ACCEPTS[name])

#: the flat columns of one run in :func:`bench.leaderboard.records_frame`, in field order
RUN_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RunRecord) if f.metadata["column"])
#: the columns among them that hold numbers (missing values become NaN)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in RUN_COLUMNS if c in _FLOATS or
                                         _ACCEPTS[c] == (int, type(None)))


def _problem(data: dict[str, Any]) -> str | None:
    """What makes ``data`` (current schema) not a record, or None."""
    unknown = sorted(set(data) - set(_STORED))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    missing = [k for k in _REQUIRED if data.get(k) is None]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    for name, value in data.items():
        accepts = _ACCEPTS[name]
        wrong = (not isinstance(value, accepts)
                 or (isinstance(value, bool) and bool not in accepts and object not in accepts))
        if wrong:
            expected = " or ".join(t.__name__ for t in accepts).replace("NoneType", "null")
            return f"{name} is {type(value).__name__} {str(value)[:40]!r}, expected {expected}"
    if data["status"] not in ("ok", "failed"):
        return f"status {data['status']!r} is neither ok nor failed"
    try:
        spec = RunSpec.from_dict(data["spec"])
    except (TypeError, ValueError) as exc:
        return f"spec: {exc}"
    mirrored = {"dataset": spec.dataset, "source": spec.source, "seed": spec.seed,
                "preset": spec.preset, "method": spec.label, "method_name": spec.method,
                "input": spec.input}
    for name, value in mirrored.items():
        if data.get(name, value) != value:  # a field older records lack reads as its spec's
            return f"{name} {data[name]!r} disagrees with its spec ({value!r})"
    return None


# ---- migrations: MIGRATIONS[v] turns schema v into v + 1 --------------------------------------

#: fields of earlier schemas that the current one names differently (see the migrations)
_FORMER_FIELDS = ("slurm_state",)


def _v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 (no version, scaleqbench <= 0.1): the same fields, free-form.

    Keys that no release ever wrote as record fields (``record_path``, added by old
    readers) are dropped; a record without a spec gets one from its flat fields.
    Fields of any schema are kept for the later migrations: unversioned records hold
    ``slurm_state``, and those that the launcher interface settled before its fields
    joined the schema already hold ``settled_by``, ``end_state`` and ``backend_state``.
    """
    data = {k: v for k, v in data.items() if k in _STORED or k in _FORMER_FIELDS}
    if not isinstance(data.get("spec"), dict):
        method = data.get("method_name") or base_method(str(data.get("method")))
        data["spec"] = {"method": method, "method_kwargs": data.get("method_kwargs") or {},
                        **{k: data[k] for k in ("dataset", "source", "seed", "preset")
                           if data.get(k) is not None}}
    spec = data["spec"]
    data.setdefault("method_name", spec.get("method"))
    data.setdefault("method_kwargs", spec.get("method_kwargs") or {})
    data.setdefault("experiment", spec.get("experiment") or "default")
    return data


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: ``slurm_state`` became ``backend_state``, beside ``settled_by`` and
    ``end_state``.

    Schema 1 set ``slurm_state`` only on the ``failed`` record that the Slurm
    launcher wrote for a job that ended without one, so such a record was settled
    by that launcher, and the state it names says how the job ended (a job that
    completed without a record counts as failed).
    """
    data = dict(data)
    state = data.pop("slurm_state", None)
    if state is None:
        return data
    ended = classify(state) if isinstance(state, str) else None  # not text: _problem says so
    settlement = {"backend_state": state, "settled_by": "slurm",
                  "end_state": "failed" if ended in ("done", "queued", "running", "unknown")
                  else ended}
    for name, value in settlement.items():
        if data.get(name) is None:
            data[name] = value
    return data


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 -> 3: the equivariance error under more operators than ``ideal``.

    Schema 2 measured the ``ideal`` operator only (``equivariance_error``, ``eq_err``:
    their meaning is unchanged). The fields schema 3 adds, ``equivariance_error_ops``,
    ``eq_err_scale_shift`` and ``scale_shift_left_out``, were not measured: they read
    as empty / missing, never as copies of ``ideal`` (for a model with a scale axis
    the two differ, and which models declare one is not in the record).
    """
    data = dict(data)
    for name in ("equivariance_error_ops", "eq_err_scale_shift", "scale_shift_left_out"):
        data.pop(name, None)  # no schema-2 writer set them; a stray one is not a measurement
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: _v0_to_v1, 1: _v1_to_v2, 2: _v2_to_v3}


# ---- JSON encoding ----------------------------------------------------------------------------

def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null; numpy scalars and tuples as plain values."""
    if hasattr(obj, "tolist") and not isinstance(obj, (list, dict)):
        obj = obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ---- the leaderboard key ----------------------------------------------------------------------

class ProtocolKey(NamedTuple):
    """One leaderboard row: a protocol and a method (with its options); seeds aggregated."""

    protocol: Protocol
    method: str


def protocol_key(record: RunRecord) -> ProtocolKey:
    """The key of ``record``'s row: everything that defines its protocol, minus the seed.

    Read from the record's spec, so a protocol field that an older record lacks
    takes its default.
    """
    return ProtocolKey(record.spec.protocol(), record.spec.label)


def run_identity(record: RunRecord) -> tuple[ProtocolKey, int]:
    """Which run a record is of: its leaderboard key and seed (what its run id hashes).

    Unlike the stored run id it is the same for a record written before the
    experiment folder left the identity (schema 0) and for one written after.
    """
    return protocol_key(record), record.seed
