"""How a run record of an earlier schema reads as the current one.

:data:`MIGRATIONS` ``[v]`` turns the JSON data of schema ``v`` into that of schema
``v + 1``; :func:`upgrade` chains them from a record's version to
:data:`SCHEMA_VERSION`. A migration never invents a measurement: a field an
earlier schema did not have reads as missing. Data that no migration can read
raises ``ValueError``, which the record's reader turns into an error naming
the file (:meth:`bench.store.record.RunRecord.from_json`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.spec_parsing import base_method
from scaleqbench.bench.store.end_states import classify

__all__ = ["FORMER_FIELDS", "MIGRATIONS", "SCHEMA_VERSION", "upgrade"]

#: the fields of schema 3 that schema 4 reads from the record's spec instead
_SPEC_COPIES = ("experiment", "method", "method_name", "method_kwargs", "dataset", "source",
                "seed", "preset", "input")
#: fields of earlier schemas that the current one names differently or no longer stores
FORMER_FIELDS = ("slurm_state", *_SPEC_COPIES)


def _v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 (no version, scaleqbench <= 0.1): the same fields, free-form.

    A record without a spec gets one from its flat fields. Fields of any schema are
    kept for the later migrations (:func:`upgrade` drops the rest): unversioned
    records hold ``slurm_state``, and those that the launcher interface settled
    before its fields joined the schema already hold ``settled_by``, ``end_state``
    and ``backend_state``.
    """
    data = dict(data)
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
    if not isinstance(state, str):
        raise ValueError(f"slurm_state is {type(state).__name__} {state!r}, expected str")
    ended = classify(state)
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


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 -> 4: the spec holds its protocol, and the record no longer repeats it.

    Schema 3 stored the spec flat and copied its fields beside it (``method``,
    ``method_name``, ``method_kwargs``, ``dataset``, ``source``, ``seed``, ``preset``,
    ``input``, ``experiment``); schema 4 reads them from the spec. A copy that
    disagrees with its spec made a schema-3 record corrupt, and still does; a copy
    the spec lacks (the experiment of an old spec) moves into it.
    """
    data = dict(data)
    spec = data.get("spec")
    copies = {k: data.pop(k) for k in _SPEC_COPIES if k in data}
    if not isinstance(spec, dict):
        return data  # the record's check names it
    if "experiment" not in spec and isinstance(copies.get("experiment"), str):
        spec = {**spec, "experiment": copies["experiment"]}
    parsed = RunSpec.from_json(spec)
    mirrored = {"dataset": parsed.dataset, "source": parsed.source, "seed": parsed.seed,
                "preset": parsed.preset, "method": parsed.label, "method_name": parsed.method,
                "input": parsed.input}
    for name, value in mirrored.items():
        if name in copies and copies[name] != value:
            raise ValueError(f"{name} {copies[name]!r} disagrees with its spec ({value!r})")
    data["spec"] = parsed.to_json()
    return data


def _todays_config(spec: dict[str, Any], config: Any) -> dict[str, Any] | None:
    """The model keyword arguments of ``spec``'s method in config ``config`` as this
    installation's registry has them, with the spec's options; None when it cannot say."""
    if not isinstance(config, str):
        return None
    try:
        from scaleqbench import methods

        values = methods.get_method(spec["method"]).config(config)
    except Exception:  # noqa: BLE001 - a plugin not installed here, a config it lacks
        return None
    return {**values, **(spec.get("method_kwargs") or {})}


def _v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 4 -> 5: a record stores what its run computed with, and its provenance.

    Schema 5 adds ``config_values`` (the model's keyword arguments), ``method_source``
    (builtin, timm or the plugin's distribution and version), ``versions["scaleqbench"]``
    and an optional resolution in the spec, which the run id hashes. Of these an earlier
    record holds only its ``recipe`` (recorded by the run itself, so known). Its config
    values are inferred from this installation's registry and its options; the rest cannot
    be known. ``provenance`` says which is which; nothing is recomputed, and the record
    keeps its run id (its spec is not resolved: it hashes what it says).
    """
    data = dict(data)
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    inferred, unknown = [], ["the scaleqbench version that made it", "method_source"]
    if data.get("config_values") is None:
        values = _todays_config(spec, data.get("config"))
        if values is None:
            unknown.append("config_values")
        else:
            data["config_values"] = values
            inferred.append("config_values (this installation's registry and the options)")
    if data.get("recipe") is None:
        unknown.append("recipe")
    data["provenance"] = {"inferred": inferred, "unknown": unknown}
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: _v0_to_v1, 1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}
#: the schema :meth:`RunRecord.to_json` writes; 0 is the unversioned format of scaleqbench <= 0.1
SCHEMA_VERSION = len(MIGRATIONS)


def upgrade(data: dict[str, Any], version: int, fields: Collection[str]) -> dict[str, Any]:
    """The data of a record of schema ``version`` as the current schema, whose fields are
    ``fields``. Keys that no schema had (``record_path``, which old readers added to
    unversioned records) are dropped; ``ValueError`` says what cannot be read."""
    if version == 0:
        data = {k: v for k, v in data.items() if k in fields or k in FORMER_FIELDS}
    for v in range(version, SCHEMA_VERSION):
        data = MIGRATIONS[v](data)
    if version < SCHEMA_VERSION and isinstance(data.get("provenance"), dict):
        data["provenance"] = {"migrated_from_schema": version, **data["provenance"]}
    return data
