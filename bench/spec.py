"""Experiment specifications: the protocol of a comparison, the frozen RunSpec of one job,
presets, and a sweep's expansion into specs.

A :class:`RunSpec` is a pure description of one job: its :class:`Protocol`
(everything every method of one comparison shares), its method with options,
and its seed. Its hash over those is the run id, so re-running a sweep finds
the records it already has; where it is stored (the experiment folder), paths
and the device are recorded but are not part of it: copying an experiment
folder, moving the data or running on a GPU does not make a new run.

A spec is written to JSON one way, :meth:`RunSpec.to_json`, wherever it is
kept (``sweep.json``, a job, a checkpoint, a run record), and read back by
:meth:`RunSpec.from_json`, which also reads the flat form of earlier versions.

How an image smaller than the canvas reaches the model (``input``: ``native``,
``pad``, ``upsample``) is part of the protocol. A sweep may ask for the
``published`` policy, which :func:`resolve_input` turns into each method's own
concrete one before the spec is made: a spec, its record and its leaderboard key
always hold what the model saw.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scaleqbench.bench.errors import BadArgumentError, UnknownNameError, did_you_mean
from scaleqbench.bench.spec_parsing import format_method, frozen

__all__ = ["INPUT_CHOICES", "INPUT_POLICIES", "PRESETS", "PROTOCOL_FIELDS", "PUBLISHED_INPUT",
           "Preset", "Protocol", "RunSpec", "expand", "preset", "resolve_input"]

#: the concrete input policies (``datasets.scaling.to_canvas``; kept here too, without the
#: torch import, for the command line's choices; a test holds the two equal)
INPUT_POLICIES = ("native", "pad", "upsample")
#: each method as its paper fed it: ``fourier`` native, the others padded (registry metadata)
PUBLISHED_INPUT = "published"
INPUT_CHOICES = (*INPUT_POLICIES, PUBLISHED_INPUT)


@dataclass(frozen=True)
class Preset:
    """How hard to train: which method configuration and how many epochs."""

    name: str
    description: str
    config: str | None  # None: the dataset's published family (mnist / stl10)


PRESETS: dict[str, Preset] = {
    "quick": Preset("quick", "reduced-width 'quick' configs, 8 epochs (fourier 6): 20-60 s "
                    "per method on embedded mnist-res, 2 idle CPU cores", "quick"),
    "paper": Preset("paper", "published widths and training protocol (e.g. MNIST: Adam 1e-2, "
                    "x0.1 at 20/40, 60 epochs, batch 128)", None),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; "
                               f"available: {', '.join(PRESETS)}")
    return PRESETS[name]


def _check_values(obj: Any) -> None:
    """Every field of a spec dataclass has its annotated type (``bool`` is no ``int``), and
    every number is >= 0 (a seed, an epoch count, a number of images); ``ValueError`` says
    which is not."""
    for name, accepts in _TYPES.get(type(obj).__name__, {}).items():
        value = getattr(obj, name)
        if not isinstance(value, accepts) or (isinstance(value, bool) and bool not in accepts):
            expected = " or ".join(t.__name__ for t in accepts).replace("NoneType", "null")
            raise ValueError(f"{name} is {type(value).__name__} {value!r}, expected {expected}")
        if isinstance(value, int) and value < 0:
            raise ValueError(f"{name} is {value}, expected a number >= 0")


def _accepted(hint: Any) -> tuple[type, ...]:
    """The types a plain field annotation (``str``, ``int``, ``int | None``...) admits."""
    if isinstance(hint, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _accepted(arg))
    return (type(None),) if hint is type(None) else (hint,)


def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """The types each plain field of ``cls`` admits (``protocol`` and ``method_kwargs`` are
    checked as they are made)."""
    return {name: _accepted(hint) for name, hint in typing.get_type_hints(cls).items()
            if name not in ("protocol", "method_kwargs")}


#: class name -> field -> the types it admits; each class is entered once defined
_TYPES: dict[str, dict[str, tuple[type, ...]]] = {}


@dataclass(frozen=True)
class Protocol:
    """Everything that defines a comparison except the method and the seed.

    Runs that differ in any of these never share a leaderboard row or a report
    section. A field added here reads as its default in older records and sweeps,
    and leaves their run ids unchanged (a value at its default is left out of the
    hash, :meth:`RunSpec.identity`).
    """

    dataset: str = "mnist-res"
    source: str = "embedded"
    preset: str = "quick"
    # how an image of size s < N reaches the model; "native" is what every run before the
    # policy existed did, so older records read as what they were
    input: str = "native"
    epochs: int | None = None  # None: the method's recipe
    limit_train: int | None = None  # tiny slices, for smoke tests
    limit_eval: int | None = None
    eq_images: int = 256

    def __post_init__(self) -> None:
        _check_values(self)
        if self.input not in INPUT_POLICIES:
            raise ValueError(f"input policy {self.input!r} is not one of "
                             f"{', '.join(INPUT_POLICIES)} (resolve 'published' first)")


#: the protocol's field names, in display order
PROTOCOL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Protocol))
_TYPES["Protocol"] = _field_types(Protocol)


@dataclass(frozen=True, init=False)
class RunSpec:
    """One job: a :class:`Protocol`, a method with options, and a seed, which seeds the model,
    the batches and the dataset realization.

    The protocol's fields read through the spec (``spec.dataset`` is
    ``spec.protocol.dataset``) and may be given flat when one is made:
    ``RunSpec("cnn", seed=1, epochs=2)`` is ``RunSpec("cnn", protocol=Protocol(epochs=2),
    seed=1)``. Options are kept sorted by name, lists as tuples (a spec is hashable).
    """

    method: str
    protocol: Protocol = Protocol()
    seed: int = 0
    method_kwargs: tuple[tuple[str, Any], ...] = ()
    # where the run is stored and run: recorded, never part of its identity (a copied folder
    # holds the same runs)
    experiment: str = field(default="default", compare=False)
    data_root: str | None = field(default=None, compare=False)
    cache_dir: str | None = field(default=None, compare=False)
    device: str = field(default="auto", compare=False)

    def __init__(self, method: str, *, protocol: Protocol | None = None, seed: int = 0,
                 method_kwargs: Mapping[str, Any] | tuple[tuple[str, Any], ...] = (),
                 experiment: str = "default", data_root: str | None = None,
                 cache_dir: str | None = None, device: str = "auto", **protocol_fields: Any):
        if protocol is not None and protocol_fields:
            raise TypeError(f"give the protocol or its fields ({', '.join(protocol_fields)}), "
                            "not both")
        kwargs = dict(method_kwargs)
        if not all(isinstance(k, str) for k in kwargs):
            raise ValueError(f"method option names must be text: {sorted(map(str, kwargs))}")
        values = {"method": method, "protocol": protocol or Protocol(**protocol_fields),
                  "seed": seed, "method_kwargs": tuple(sorted((k, frozen(v))
                                                              for k, v in kwargs.items())),
                  "experiment": experiment, "data_root": data_root, "cache_dir": cache_dir,
                  "device": device}
        for name, value in values.items():
            object.__setattr__(self, name, value)
        _check_values(self)

    def __getattr__(self, name: str) -> Any:
        # only called for names the spec itself lacks: the protocol's fields
        if name in PROTOCOL_FIELDS:
            return getattr(self.protocol, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def identity(self) -> dict[str, Any]:
        """What the run id hashes: the method, and the protocol fields, options and seed that
        differ from their defaults (a new field with a default keeps every existing run id)."""
        d: dict[str, Any] = {"method": self.method}
        d.update({k: v for k, v in asdict(self.protocol).items() if v != _DEFAULT_PROTOCOL[k]})
        if self.method_kwargs:
            d["method_kwargs"] = [list(kv) for kv in self.method_kwargs]
        if self.seed != 0:
            d["seed"] = self.seed
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.method)
        return f"{safe}-s{self.seed}-{hashlib.sha256(blob).hexdigest()[:12]}"

    @property
    def label(self) -> str:
        return format_method(self.method, dict(self.method_kwargs))

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON data (plain dicts, lists, text and numbers), its protocol nested:
        the one form a spec is kept in (``sweep.json``, jobs, checkpoints, run records)."""
        return {"method": self.method, "method_kwargs": _plain(dict(self.method_kwargs)),
                "seed": self.seed, "protocol": asdict(self.protocol),
                **{k: getattr(self, k) for k in _PLACE_FIELDS}}

    @classmethod
    def from_json(cls, data: Any) -> RunSpec:
        """A spec from :meth:`to_json`'s data, or from the flat form (the protocol's fields
        beside the method) of earlier versions; a field absent from ``data`` takes its
        default. ``ValueError`` says what makes ``data`` no spec."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a spec is an object, not {type(data).__name__}")
        data = dict(data)
        flat = {k: data.pop(k) for k in PROTOCOL_FIELDS if k in data}
        nested = data.pop("protocol", None)
        if nested is not None and flat:
            raise ValueError(f"{', '.join(flat)} given both in and beside the protocol")
        protocol = flat if nested is None else nested
        if not isinstance(protocol, Mapping):
            raise ValueError(f"protocol is {type(protocol).__name__}, not an object")
        unknown = sorted(set(data) - set(_SPEC_FIELDS)) + sorted(set(protocol) -
                                                                 set(PROTOCOL_FIELDS))
        if unknown:
            raise ValueError(f"unknown run spec field(s) {', '.join(unknown)}")
        if "method" not in data:
            raise ValueError("missing field method")
        if not isinstance(data.get("method_kwargs") or {}, Mapping):
            raise ValueError("method_kwargs is not an object of options")
        return cls(protocol=Protocol(**protocol),
                   **{**data, "method_kwargs": data.get("method_kwargs") or {}})


_DEFAULT_PROTOCOL = asdict(Protocol())
_SPEC_FIELDS = tuple(f.name for f in fields(RunSpec) if f.name != "protocol")
_PLACE_FIELDS = tuple(f.name for f in fields(RunSpec) if not f.compare)
_TYPES["RunSpec"] = _field_types(RunSpec)


def _plain(value: Any) -> Any:
    """Tuples as lists, at any depth: JSON data (:func:`frozen` is the way back)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def resolve_input(policy: str, method: str, dataset: str) -> str:
    """The concrete input policy of ``method`` on ``dataset`` when a sweep asks for ``policy``.

    ``published`` gives each method the handling its paper used (registry metadata
    ``input``: ``fourier`` native, every other method padded, as in Rahman & Yeh 2023).
    On a dataset whose images all have the canvas size (``mnist-scale``, ``stl10``)
    every policy feeds the same pixels, so each resolves to ``native``: the run is the
    same run whatever was asked.
    """
    if policy not in INPUT_CHOICES:
        raise BadArgumentError(f"unknown input policy {policy!r}; use one of "
                               f"{', '.join(INPUT_CHOICES)}")
    from scaleqbench.datasets import dataset_info

    if len(set(dataset_info(dataset).sizes)) == 1:
        return "native"
    if policy == PUBLISHED_INPUT:
        from scaleqbench.methods import get_method

        return get_method(method).input
    return policy


def expand(methods: list[tuple[str, dict[str, Any]]], dataset: str, seeds: list[int],
           preset_name: str = "quick", input: str = PUBLISHED_INPUT, **common: Any
           ) -> list[RunSpec]:
    """The sweep as RunSpecs: every method x seed, methods in the order given; ``input`` is
    resolved per method (:func:`resolve_input`)."""
    preset(preset_name)
    return [RunSpec(name, dataset=dataset, seed=seed, preset=preset_name, method_kwargs=kwargs,
                    input=resolve_input(input, name, dataset), **common)
            for name, kwargs in methods for seed in seeds]
