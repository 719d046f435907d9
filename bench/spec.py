"""Experiment specifications: frozen RunSpecs, presets, and parsing of sweep arguments.

A :class:`RunSpec` is a pure description of one job (method x dataset x seed x
preset); its hash over the identity fields is the run id, so re-running a
sweep finds the records it already has. A run's identity is its
:class:`Protocol` (everything every method of one comparison shares), its
method with options, and its seed; where it is stored (the experiment
folder), paths and the device are not part of it: copying an experiment
folder, moving the data or running on a GPU does not make a new run.

How an image smaller than the canvas reaches the model (``input``: ``native``,
``pad``, ``upsample``) is part of the protocol. A sweep may ask for the
``published`` policy, which :func:`resolve_input` turns into each method's own
concrete one before the spec is made: a spec, its record and its leaderboard key
always hold what the model saw.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scaleqbench.bench.errors import BadArgumentError, UnknownNameError

__all__ = ["INPUT_CHOICES", "INPUT_POLICIES", "PRESETS", "PROTOCOL_FIELDS", "PUBLISHED_INPUT",
           "Preset", "Protocol", "RunSpec", "base_method", "expand", "format_method",
           "parse_int_list", "parse_method", "parse_methods", "resolve_input"]

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
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownNameError(f"unknown preset {name!r}{hint}; available: {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class Protocol:
    """Everything that defines a comparison except the method and the seed.

    Runs that differ in any of these never share a leaderboard row or a report
    section. Each field is a :class:`RunSpec` field with the same default; a field
    added here (and there) reads as its default in older records and sweeps, and
    leaves their run ids unchanged (a value at its default is left out of the hash).
    """

    dataset: str = "mnist-res"
    source: str = "embedded"
    preset: str = "quick"
    # how an image of size s < N reaches the model; "native" is what every run before the
    # policy existed did, so older records read as what they were
    input: str = "native"
    epochs: int | None = None  # None: the method's recipe
    limit_train: int | None = None
    limit_eval: int | None = None
    eq_images: int = 256


#: the protocol's field names, in display order
PROTOCOL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Protocol))


@dataclass(frozen=True)
class RunSpec:
    """One job. ``seed`` seeds the model, the batches and the dataset realization."""

    method: str
    dataset: str = "mnist-res"
    source: str = "embedded"
    seed: int = 0
    preset: str = "quick"
    epochs: int | None = None  # None: the recipe's
    method_kwargs: tuple[tuple[str, Any], ...] = ()
    limit_train: int | None = None  # tiny slices, for smoke tests
    limit_eval: int | None = None
    eq_images: int = 256
    input: str = "native"  # concrete: native | pad | upsample (resolve_input)
    # where the run is stored: recorded, never part of its identity (a copied folder holds
    # the same runs)
    experiment: str = field(default="default", compare=False)
    data_root: str | None = field(default=None, compare=False)
    cache_dir: str | None = field(default=None, compare=False)
    device: str = field(default="auto", compare=False)

    IDENTITY = (*PROTOCOL_FIELDS, "method", "method_kwargs", "seed")

    def __post_init__(self) -> None:
        if self.input not in INPUT_POLICIES:
            raise ValueError(f"input policy {self.input!r} is not one of "
                             f"{', '.join(INPUT_POLICIES)} (resolve 'published' first)")

    def protocol(self) -> Protocol:
        return Protocol(**{k: getattr(self, k) for k in PROTOCOL_FIELDS})

    def identity(self) -> dict[str, Any]:
        """The identity fields that differ from their defaults (a new field with a default
        keeps every existing run id)."""
        defaults = {f.name: f.default for f in fields(self)}
        d = {k: getattr(self, k) for k in self.IDENTITY
             if k == "method" or getattr(self, k) != defaults[k]}
        if "method_kwargs" in d:
            d["method_kwargs"] = [list(kv) for kv in self.method_kwargs]
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.method)
        return f"{safe}-s{self.seed}-{hashlib.sha256(blob).hexdigest()[:12]}"

    @property
    def label(self) -> str:
        return format_method(self.method, dict(self.method_kwargs))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["method_kwargs"] = dict(self.method_kwargs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """A spec from :meth:`to_dict`'s form; a field absent from ``d`` takes its default."""
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown run spec field(s) {', '.join(unknown)}")
        d["method_kwargs"] = tuple(sorted((k, _frozen(v)) for k, v in
                                          dict(d.get("method_kwargs") or {}).items()))
        return cls(**d)


def _literal(text: str) -> Any:
    """A Python literal (lists become tuples: a spec is hashable), else the text itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if isinstance(value, (dict, set)):
        raise BadArgumentError(f"method option value {text!r}: write a number, a string or "
                               "a tuple such as (8,16,24)")
    return _frozen(value)


def _frozen(value: Any) -> Any:
    """Lists as tuples, at any depth: a spec is hashable, and a list read back from a record's
    JSON is the tuple that was written."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def parse_method(text: str) -> tuple[str, dict[str, Any]]:
    """``'fourier[impl=reference,width=2]'`` -> ``('fourier', {'impl': 'reference', 'width': 2})``."""
    m = re.fullmatch(r"\s*([^\[\]]+?)\s*(?:\[(.*)\])?\s*", text)
    if not m or not m.group(1):
        raise BadArgumentError(f"cannot parse method {text!r}; write NAME or NAME[key=value,...]")
    kwargs: dict[str, Any] = {}
    if m.group(2) is not None and m.group(2).strip():  # "cnn[]": no options
        for item in _split_top_level(m.group(2), keep_empty=True):
            k, eq, v = item.partition("=")
            if not eq or not k.strip() or not v.strip():
                raise BadArgumentError(f"method option {item!r} in {text!r} is not key=value")
            if not k.strip().isidentifier():
                raise BadArgumentError(f"method option name {k.strip()!r} in {text!r} is not a "
                                       "name; write NAME[key=value,...]")
            if k.strip() in kwargs:
                raise BadArgumentError(f"method option {k.strip()!r} is given twice in {text!r}")
            kwargs[k.strip()] = _literal(v.strip())
    return m.group(1), kwargs


_OPEN, _CLOSE = "([{", ")]}"


def _split_top_level(text: str, keep_empty: bool = False) -> list[str]:
    """``text`` split at the commas outside brackets, parentheses, braces and quotes:
    ``'cnn[channels=(8,16)],sesn'`` -> ``['cnn[channels=(8,16)]', 'sesn']``."""
    parts, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0 or quote:
        raise BadArgumentError(f"unbalanced brackets or quotes in {text!r}")
    parts.append(cur)
    parts = [p.strip() for p in parts]
    return parts if keep_empty else [p for p in parts if p]


def parse_methods(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Expand ``all``, comma lists, wildcards and ``timm:`` names, each with optional ``[k=v]``."""
    from scaleqbench.methods import resolve_methods

    out: list[tuple[str, dict[str, Any]]] = []
    for part in _split_top_level(text):
        name, kwargs = parse_method(part)
        for resolved in resolve_methods(name):
            if (resolved, kwargs) not in out:
                out.append((resolved, kwargs))
    if not out:
        raise BadArgumentError(f"no methods in {text!r}; try --methods all")
    return out


def format_method(name: str, kwargs: dict[str, Any]) -> str:
    if not kwargs:
        return name
    return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(kwargs.items()))}]"


def base_method(label: str) -> str:
    """A method label's registry name, options stripped: ``fourier[impl=x]`` -> ``fourier``."""
    return str(label).split("[", 1)[0]


def parse_int_list(text: str, what: str, lo: int | None = None, hi: int | None = None
                   ) -> list[int]:
    """``'0,1,2'``, ``'0-5'`` or a mix, as sorted unique ints within [lo, hi]."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", part)
        if not m:
            raise BadArgumentError(f"bad {what} {part!r} in {text!r}; write e.g. 0,1,2 or 0-5")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise BadArgumentError(f"bad {what} range {part!r}: the end is before the start")
        values.extend(range(a, b + 1))
    if not values:
        raise BadArgumentError(f"no {what} given in {text!r}")
    for v in values:
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise BadArgumentError(f"{what} {v} is out of range {bounds}")
    return sorted(set(values))


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
    return [RunSpec(method=name, dataset=dataset, seed=seed, preset=preset_name,
                    method_kwargs=tuple(sorted(kwargs.items())),
                    input=resolve_input(input, name, dataset), **common)
            for name, kwargs in methods for seed in seeds]
