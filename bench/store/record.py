"""The run record: one dataclass, the only place that knows what a record holds.

A record is what one run leaves behind (``<experiment>/runs/<run-id>.json``):
the :class:`~bench.spec.RunSpec` it ran, where and when, every metric, and how
it failed if it did. What the spec says (method, dataset, seed, protocol...)
is read from it, never stored twice. :meth:`RunRecord.to_json` writes the
current schema (:data:`SCHEMA_VERSION`); :meth:`RunRecord.from_json` reads it
and every older schema through :mod:`.migrations`, and rejects anything else
with an error naming the file: wrong types, and values out of their range (an
accuracy of 5.0, a negative error or count) alike.

:func:`protocol_key` is the leaderboard key: a run's protocol (every
:class:`~bench.spec.Protocol` field) and its method with options and recipe
overrides, the seed left out. Runs that share a key are seeds of one result;
runs that differ in anything else never share a row, and a record a reader
found stale (:mod:`.identity`) makes a row of its own.

Besides its results a record holds what its run computed with (``config_values``,
``recipe``), the method's source and the software's versions; a record migrated
from an earlier schema says in ``provenance`` what was inferred and what could
not be known (:mod:`.migrations`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from scaleqbench.bench.errors import CorruptRecordError, RecordSchemaError
from scaleqbench.bench.spec import Protocol, RunSpec
from scaleqbench.bench.store.migrations import SCHEMA_VERSION, upgrade
from scaleqbench.bench.store.per_image import check_per_image
from scaleqbench.bench.store.record_schema import Schema, clean, json_default

__all__ = ["NUMERIC_COLUMNS", "RUN_COLUMNS", "SCHEMA_VERSION", "STALE_MARK", "ProtocolKey",
           "RunRecord", "protocol_key", "run_identity"]

#: a fraction (an accuracy, a share of consistent predictions)
FRACTION = (0.0, 1.0)
#: a count, a duration, a rate, an error: nothing below zero
AT_LEAST_0 = (0.0, math.inf)


def _field(default: Any = None, *, column: bool = False, factory: Callable[[], Any] | None = None,
           stored: bool = True, bounds: tuple[float, float] | None = None) -> Any:
    """A record field. ``column``: a flat leaderboard column (:data:`RUN_COLUMNS`);
    ``stored``: written to the JSON file (the file's own path is not); ``bounds``: the range
    of every number the value holds (at any depth of a dict)."""
    meta = {"column": column, "stored": stored, "bounds": bounds}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta, compare=stored)


@dataclass
class RunRecord:
    """Everything one run records. Build one with :meth:`for_spec`, fill it with :meth:`set`."""

    run_id: str = _field(column=True)  # its file's name (schema 0 hashed the folder name too)
    spec: RunSpec = _field()  # what ran; method, dataset, seed... read through it
    # how it ended
    status: str = _field("failed", column=True)  # ok | failed
    error: str | None = _field(column=True)  # the traceback or the launcher's reason
    failed_epoch: int | None = _field(bounds=AT_LEAST_0)  # where a loss went non-finite
    started_at: str | None = _field()
    finished_at: str | None = _field()
    wall_time_s: float | None = _field(bounds=AT_LEAST_0)
    # where: software, machine, launcher
    versions: dict[str, str] = _field(factory=dict)
    device: str | None = _field(column=True)
    # cpu | cuda: the leaderboard never averages times over both (None: an older record,
    # whose device name tells)
    device_kind: str | None = _field(column=True)
    threads: int | None = _field(bounds=AT_LEAST_0)  # CPU results depend on it (sum order)
    command: str | list[str] | None = _field()
    job_id: str | None = _field()  # the launcher's job that ran it (None: run in-process)
    log: str | None = _field()
    log_err: str | None = _field()
    hostname: str | None = _field()
    slurm_restarts: int | None = _field(bounds=AT_LEAST_0)
    # set when a launcher recorded a job that ended without writing its record (run_store)
    settled_by: str | None = _field()  # that launcher's name
    end_state: str | None = _field()  # how the job ended, one of launch_api.ENDED
    backend_state: str | None = _field()  # the backend's own words, e.g. "CANCELLED by 0"
    # training: what the run computed with (the spec's resolution, or, for a spec made by
    # hand, today's); a record migrated from an earlier schema says in ``provenance`` which
    # of these were inferred and what could not be known
    config: str | None = _field()  # the config's name
    config_values: dict[str, Any] | None = _field()  # the model's keyword arguments
    method_source: str | None = _field()  # builtin, timm, or "<plugin distribution> <version>"
    epochs: int | None = _field(bounds=AT_LEAST_0)  # trained (the recipe's, or the spec's)
    recipe: dict[str, Any] | None = _field()
    provenance: dict[str, Any] | None = _field()
    params: int | None = _field(column=True, bounds=AT_LEAST_0)
    dataset_cache: str | None = _field()
    dataset_meta: dict[str, Any] = _field(factory=dict)
    split_sizes: dict[str, int] = _field(factory=dict, bounds=AT_LEAST_0)
    val_acc: float | None = _field(column=True, bounds=FRACTION)
    best_epoch: int | None = _field(bounds=AT_LEAST_0)
    history: list[dict[str, Any]] = _field(factory=list)
    train_time_s: float | None = _field(column=True, bounds=AT_LEAST_0)
    train_img_per_s: float | None = _field(column=True, bounds=AT_LEAST_0)
    resumed_from_epoch: int | None = _field(bounds=AT_LEAST_0)
    checkpoint: str | None = _field()
    # evaluation
    test_acc: float | None = _field(column=True, bounds=FRACTION)
    per_size_acc: dict[str, float | None] = _field(factory=dict, bounds=FRACTION)
    infer_img_per_s: float | None = _field(column=True, bounds=AT_LEAST_0)
    scale_consistency: float | None = _field(column=True, bounds=FRACTION)
    # the same with BatchNorm statistics re-estimated per test size (native input, BN models,
    # several sizes; bench.run.precise_bn); None where that does not apply
    test_acc_recal: float | None = _field(column=True, bounds=FRACTION)
    per_size_acc_recal: dict[str, float | None] | None = _field(bounds=FRACTION)
    scale_consistency_recal: float | None = _field(column=True, bounds=FRACTION)
    bn_recal: dict[str, Any] | None = _field()  # images per size, the sizes recalibrated
    equivariance_error: dict[str, dict[str, float | None]] = _field(factory=dict,
                                                                    bounds=AT_LEAST_0)
    eq_err: float | None = _field(column=True, bounds=AT_LEAST_0)
    logit_inv_err: float | None = _field(column=True, bounds=AT_LEAST_0)
    eq_note: str | None = _field()  # why no equivariance error was measured
    # the same error under the other operators of bench.run.metrics ({operator: {layer:
    # {size}}}; bench run records "scale-shift"), its summary and the slices it left out
    equivariance_error_ops: dict[str, dict[str, dict[str, float | None]]] = _field(
        factory=dict, bounds=AT_LEAST_0)
    eq_err_scale_shift: float | None = _field(column=True, bounds=AT_LEAST_0)
    scale_shift_left_out: dict[str, dict[str, int]] = _field(factory=dict, bounds=AT_LEAST_0)
    # per test image, packed (bench.store.per_image): right/wrong and scale-consistent, for
    # the leaderboard's one-seed intervals and tests; {} in records made before it
    per_image: dict[str, str] = _field(factory=dict)
    # CUDA: torch.cuda.max_memory_allocated over the run; CPU: the process's peak resident set
    peak_mem_mb: float | None = _field(column=True, bounds=AT_LEAST_0)
    # what torch reported it ran without a deterministic kernel (deterministic GPU runs)
    nondeterministic_ops: list[str] | None = _field()
    # the file it was read from or written to (not stored in it)
    path: Path | None = _field(stored=False)
    # why it is stale, when a reader found it so (bench.store.identity); never stored
    stale: str | None = _field(column=True, stored=False)

    @classmethod
    def for_spec(cls, spec: RunSpec, **facts: Any) -> RunRecord:
        """A (so far failed) record of ``spec``; ``facts`` fill further fields by name."""
        return cls(run_id=spec.run_id, spec=spec).set(**facts)

    def set(self, **facts: Any) -> RunRecord:
        """Fill fields by name; a name that is not a field is a bug, not a new field."""
        unknown = sorted(set(facts) - set(_SCHEMA.stored))
        if unknown:
            raise TypeError(f"RunRecord has no field(s) {', '.join(unknown)}")
        for name, value in facts.items():
            setattr(self, name, value)
        return self

    # what the spec says, flat (leaderboard columns and readers of one run)
    experiment = property(lambda self: self.spec.experiment,
                          doc="the folder it was launched into; not its identity")
    method = property(lambda self: self.spec.label,
                      doc="the label, options included: fourier[impl=reference]")
    method_name = property(lambda self: self.spec.method, doc="the registry name")
    method_kwargs = property(lambda self: dict(self.spec.method_kwargs))
    dataset = property(lambda self: self.spec.dataset)
    source = property(lambda self: self.spec.source)
    seed = property(lambda self: self.spec.seed)
    preset = property(lambda self: self.spec.preset)
    input = property(lambda self: self.spec.input, doc="the concrete input policy")

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
        for name in _SCHEMA.stored:
            value = getattr(self, name)
            out[name] = value.to_json() if isinstance(value, RunSpec) else value
        return clean(out)

    def to_json(self) -> str:
        data = self.to_dict()
        # never write a record that this module would refuse to read back
        problem = _SCHEMA.problem({k: v for k, v in data.items() if k != "schema_version"})
        if problem:
            raise ValueError(f"run record {self.run_id} is malformed: {problem}")
        return json.dumps(data, indent=2, default=json_default) + "\n"

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
        try:
            data = upgrade(data, version, _SCHEMA.stored)
        except (TypeError, ValueError) as exc:  # data no migration can read
            raise CorruptRecordError(path, str(exc)) from None
        problem = _SCHEMA.problem(data)
        if problem:
            raise CorruptRecordError(path, problem)
        data["spec"] = RunSpec.from_json(data["spec"])
        return cls(**_SCHEMA.as_floats(data), path=Path(path))


_SCHEMA = Schema(RunRecord, required=("run_id", "spec"),
                 parsers={"spec": RunSpec.from_json, "per_image": check_per_image},
                 statuses=("ok", "failed"))

#: the spec's fields among the columns of one run (properties of the record)
_SPEC_COLUMNS = ("experiment", "method", "dataset", "source", "seed", "preset", "input")
#: the flat columns of one run in :func:`bench.report.leaderboard.records_frame`, in order
RUN_COLUMNS: tuple[str, ...] = ("run_id", *_SPEC_COLUMNS, *(
    f.name for f in fields(RunRecord) if f.metadata["column"] and f.name != "run_id"))
#: the columns among them that hold numbers (missing values become NaN)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in RUN_COLUMNS if c in _SCHEMA.numeric)


# ---- the leaderboard key ----------------------------------------------------------------------

class ProtocolKey(NamedTuple):
    """One leaderboard row: a protocol and a method (with its options); seeds aggregated."""

    protocol: Protocol
    method: str


#: how a row of stale records is labelled (``cnn (stale)``): never averaged with fresh ones
STALE_MARK = " (stale)"


def protocol_key(record: RunRecord) -> ProtocolKey:
    """The key of ``record``'s row: everything that defines its protocol, minus the seed.

    Read from the record's spec, so a protocol field that an older record lacks
    takes its default. The method is the spec's label, recipe overrides included
    (``cnn {lr=0.01}``), marked :data:`STALE_MARK` when a reader found the record
    stale: stale records make a row of their own.
    """
    return ProtocolKey(record.spec.protocol,
                       record.spec.label + (STALE_MARK if record.stale else ""))


def run_identity(record: RunRecord) -> tuple:
    """Which run of a sweep a record is of: its protocol, label and seed (its spec's slot).

    Unlike the stored run id it is the same for a record written before the
    experiment folder left the identity (schema 0) and for one written after, and
    for a record of a method whose config or recipe changed since (a stale one).
    """
    return record.spec.slot
