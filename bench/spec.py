"""Experiment specifications: the protocol of a comparison, the frozen RunSpec of one job,
presets, and a sweep's expansion into specs.

A :class:`RunSpec` is a pure description of one job: its :class:`Protocol`
(everything every method of one comparison shares), its method with options,
overrides of its training recipe, and its seed. Where it is stored (the experiment
folder), paths and the device are recorded but are not part of it: copying an
experiment folder, moving the data or running on a GPU does not make a new run.

The run id hashes what determines the result. A spec expanded for a sweep is *resolved*
(:mod:`bench.run.resolve`): it holds the config values its model is built with and its
training recipe (:class:`Resolved`), and its id hashes those, the protocol, the method
name and the seed -- not the config's name nor the options as typed: an option typed
equal to its default is the same run, a method whose config or recipe changed makes a
new one. A spec never resolved (made by hand, or read from a record of an earlier
version) hashes its options and recipe overrides as given.

A spec is written to JSON one way, :meth:`RunSpec.to_json`, wherever it is
kept (``sweep.json``, a job, a checkpoint, a run record), and read back by
:meth:`RunSpec.from_json`, which also reads the flat form of earlier versions.

The spec, its JSON form and its identity are one contract, kept in one module (a little
over the house's 300 lines for it).

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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scaleqbench.bench.errors import BadArgumentError, UnknownNameError, did_you_mean
from scaleqbench.bench.spec_parsing import (
    Pairs,
    check_field_values,
    field_types,
    format_method,
    format_recipe,
    pairs,
    plain,
)

__all__ = ["INPUT_CHOICES", "INPUT_POLICIES", "PRECISIONS", "PRESETS", "PROTOCOL_FIELDS",
           "PUBLISHED_INPUT", "Preset", "Protocol", "Resolved", "RunSpec", "expand", "preset",
           "resolve_input"]

#: the concrete input policies (``datasets.scaling.to_canvas``; kept here too, without the
#: torch import, for the command line's choices; a test holds the two equal)
INPUT_POLICIES = ("native", "pad", "upsample")
#: each method as its paper fed it: ``fourier`` native, the others padded (registry metadata)
PUBLISHED_INPUT = "published"
INPUT_CHOICES = (*INPUT_POLICIES, PUBLISHED_INPUT)
#: the arithmetic of a run's training steps: fp32 (TF32 off), tf32 (CUDA matmuls and
#: convolutions in TF32) or bf16 (training steps under bfloat16 autocast); evaluation and
#: every metric run in full precision whatever it is (docs/cli.md, "GPU runs")
PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class Preset:
    """How hard to train and how much to measure: which method configuration (whose recipe
    sets the epochs), and the protocol fields the preset gives every run unless a sweep sets
    them (``protocol``: e.g. how many images the equivariance error is averaged over)."""

    name: str
    description: str
    config: str | None  # None: the dataset's published family (mnist / stl10)
    protocol: tuple[tuple[str, Any], ...] = ()


PRESETS: dict[str, Preset] = {
    # the same for every method: 3 epochs, scale consistency on 500 seeded test images (every
    # test image still counts for accuracy), the equivariance error on 64: three seeds of every
    # method in about 8 minutes on 2 idle CPU cores (README, "The default leaderboard")
    "quick": Preset("quick", "reduced-width 'quick' configs, 3 epochs, scale consistency on 500 "
                    "test images, equivariance on 64: 5-20 s per run on embedded mnist-res, "
                    "2 idle CPU cores", "quick",
                    (("eq_images", 64), ("consistency_images", 500))),
    "paper": Preset("paper", "published widths and training protocol (e.g. MNIST: Adam 1e-2, "
                    "x0.1 at 20/40, 60 epochs, batch 128)", None),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; "
                               f"available: {', '.join(PRESETS)}")
    return PRESETS[name]


#: class name -> field -> the types it admits; each class is entered once defined
_TYPES: dict[str, dict[str, tuple[type, ...]]] = {}


def _check_values(obj: Any) -> None:
    check_field_values(obj, _TYPES.get(type(obj).__name__, {}))


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
    # scale consistency on a fixed seeded subset of this many test images; None: every one
    consistency_images: int | None = None
    precision: str = "fp32"  # PRECISIONS; fp32 is what every run before the field did

    def __post_init__(self) -> None:
        _check_values(self)
        if self.input not in INPUT_POLICIES:
            raise ValueError(f"input policy {self.input!r} is not one of "
                             f"{', '.join(INPUT_POLICIES)} (resolve 'published' first)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")


#: the protocol's field names, in display order
PROTOCOL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Protocol))
_TYPES["Protocol"] = field_types(Protocol, skip=())


@dataclass(frozen=True)
class Resolved:
    """What a run computes with: the keyword arguments its model is built with (the method's
    configuration merged with its options) and every field of its training recipe (with
    ``--epochs`` and the recipe overrides applied). Filled from the registry by
    :func:`bench.run.resolve.resolve`; sorted by name, lists as tuples."""

    config: Pairs
    recipe: Pairs

    @classmethod
    def of(cls, config: Mapping[str, Any], recipe: Mapping[str, Any]) -> Resolved:
        return cls(pairs(config, "resolved config"), pairs(recipe, "resolved recipe"))

    def to_json(self) -> dict[str, Any]:
        return {"config": plain(dict(self.config)), "recipe": plain(dict(self.recipe))}

    @classmethod
    def from_json(cls, data: Any) -> Resolved:
        if not isinstance(data, Mapping) or set(data) != {"config", "recipe"}:
            raise ValueError("resolved must be an object of config and recipe")
        return cls.of(data["config"], data["recipe"])


@dataclass(frozen=True, init=False)
class RunSpec:
    """One job: a :class:`Protocol`, a method with options, and a seed, which seeds the model,
    the batches and the dataset realization.

    The protocol's fields read through the spec (``spec.dataset`` is
    ``spec.protocol.dataset``) and may be given flat when one is made:
    ``RunSpec("cnn", seed=1, epochs=2)`` is ``RunSpec("cnn", protocol=Protocol(epochs=2),
    seed=1)``. Options and recipe overrides are kept sorted by name, lists as tuples (a
    spec is hashable). ``resolved`` is what the run computes with (see the module
    docstring); None for a spec that was never resolved.
    """

    method: str
    protocol: Protocol = Protocol()
    seed: int = 0
    method_kwargs: Pairs = ()
    recipe_overrides: Pairs = ()  # fields of the training recipe set for this run
    resolved: Resolved | None = None
    # where the run is stored and run: recorded, never part of its identity (a copied folder
    # holds the same runs)
    experiment: str = field(default="default", compare=False)
    data_root: str | None = field(default=None, compare=False)
    cache_dir: str | None = field(default=None, compare=False)
    device: str = field(default="auto", compare=False)
    # deterministic GPU kernels (docs/cli.md, "GPU runs"): how it ran, not what it is
    deterministic: bool = field(default=True, compare=False)
    # where its epochs are streamed besides the CSV (bench.run.loggers: tensorboard, wandb)
    log: tuple = field(default=(), compare=False)

    def __init__(self, method: str, *, protocol: Protocol | None = None, seed: int = 0,
                 method_kwargs: Mapping[str, Any] | Pairs = (),
                 recipe_overrides: Mapping[str, Any] | Pairs = (),
                 resolved: Resolved | None = None, experiment: str = "default",
                 data_root: str | None = None, cache_dir: str | None = None,
                 device: str = "auto", deterministic: bool = True,
                 log: tuple[str, ...] | list[str] = (), **protocol_fields: Any):
        if protocol is not None and protocol_fields:
            raise TypeError(f"give the protocol or its fields ({', '.join(protocol_fields)}), "
                            "not both")
        if resolved is not None and not isinstance(resolved, Resolved):
            raise ValueError(f"resolved is {type(resolved).__name__}, not Resolved")
        values = {"method": method, "protocol": protocol or Protocol(**protocol_fields),
                  "seed": seed, "method_kwargs": pairs(dict(method_kwargs), "method options"),
                  "recipe_overrides": pairs(dict(recipe_overrides), "recipe overrides"),
                  "resolved": resolved, "experiment": experiment, "data_root": data_root,
                  "cache_dir": cache_dir, "device": device, "deterministic": deterministic,
                  "log": tuple(log) if isinstance(log, (list, tuple)) else log}
        for name, value in values.items():
            object.__setattr__(self, name, value)
        _check_values(self)

    def __getattr__(self, name: str) -> Any:
        # only called for names the spec itself lacks: the protocol's fields
        if name in PROTOCOL_FIELDS:
            return getattr(self.protocol, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def identity(self) -> dict[str, Any]:
        """What the run id hashes: the method, the protocol fields and seed that differ from
        their defaults (a new protocol field keeps every run id), and what the run computes
        with -- the resolved config and recipe, or, for a spec never resolved, its options and
        recipe overrides as given."""
        d: dict[str, Any] = {"method": self.method}
        d.update({k: v for k, v in asdict(self.protocol).items() if v != _DEFAULT_PROTOCOL[k]})
        if self.resolved is not None:
            d.update(self.resolved.to_json())
        else:
            if self.method_kwargs:
                d["method_kwargs"] = [list(kv) for kv in self.method_kwargs]
            if self.recipe_overrides:
                d["recipe_overrides"] = [list(kv) for kv in self.recipe_overrides]
        if self.seed != 0:
            d["seed"] = self.seed
        return d

    def with_resolution(self, method_kwargs: Mapping[str, Any],
                        recipe_overrides: Mapping[str, Any], resolved: Resolved) -> RunSpec:
        """This spec resolved: its options and overrides (those equal to their defaults left
        out) and what it computes with."""
        return RunSpec(self.method, protocol=self.protocol, seed=self.seed,
                       method_kwargs=method_kwargs, recipe_overrides=recipe_overrides,
                       resolved=resolved, **{k: getattr(self, k) for k in _PLACE_FIELDS})

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.method)
        return f"{safe}-s{self.seed}-{hashlib.sha256(blob).hexdigest()[:12]}"

    @property
    def label(self) -> str:
        """The method as a leaderboard row names it: options in brackets, recipe overrides in
        braces, ``cnn[channels=(8, 8, 8)] {batch_size=32,lr=0.01}``."""
        recipe = format_recipe(dict(self.recipe_overrides))
        return format_method(self.method, dict(self.method_kwargs)) + (f" {recipe}"
                                                                       if recipe else "")

    @property
    def slot(self) -> tuple[Protocol, str, int]:
        """Which run of a sweep this is, whatever it computes with: protocol, label and seed.
        Two records of one slot with different identities: the older one is stale."""
        return self.protocol, self.label, self.seed

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON data (plain dicts, lists, text and numbers), its protocol nested:
        the one form a spec is kept in (``sweep.json``, jobs, checkpoints, run records).
        Recipe overrides and the resolution are written when there are any."""
        extra: dict[str, Any] = {}
        if self.recipe_overrides:
            extra["recipe_overrides"] = plain(dict(self.recipe_overrides))
        if self.resolved is not None:
            extra["resolved"] = self.resolved.to_json()
        return {"method": self.method, "method_kwargs": plain(dict(self.method_kwargs)),
                "seed": self.seed, "protocol": asdict(self.protocol), **extra,
                **{k: plain(getattr(self, k)) for k in _PLACE_FIELDS}}

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
        for name in ("method_kwargs", "recipe_overrides"):
            if not isinstance(data.get(name) or {}, Mapping):
                raise ValueError(f"{name} is not an object of names and values")
            data[name] = data.get(name) or {}
        if data.get("resolved") is not None:
            data["resolved"] = Resolved.from_json(data["resolved"])
        return cls(protocol=Protocol(**protocol), **data)


_DEFAULT_PROTOCOL = asdict(Protocol())
_SPEC_FIELDS = tuple(f.name for f in fields(RunSpec) if f.name != "protocol")
_PLACE_FIELDS = tuple(f.name for f in fields(RunSpec) if not f.compare)
_TYPES["RunSpec"] = field_types(RunSpec, skip=(
    "protocol", "method_kwargs", "recipe_overrides", "resolved"))


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
           preset_name: str = "quick", input: str = PUBLISHED_INPUT,
           recipe: Mapping[str, Any] | None = None, **common: Any) -> list[RunSpec]:
    """The sweep as RunSpecs: every method x seed, methods in the order given; ``input`` is
    resolved per method (:func:`resolve_input`), ``recipe`` overrides every method's recipe.
    The specs are not resolved yet: :func:`bench.run.resolve.resolve` does that (it
    imports the registry and the recipes)."""
    common = {**dict(preset(preset_name).protocol), **common}
    return [RunSpec(name, dataset=dataset, seed=seed, preset=preset_name, method_kwargs=kwargs,
                    recipe_overrides=recipe or {}, input=resolve_input(input, name, dataset),
                    **common)
            for name, kwargs in methods for seed in seeds]
