"""The checks of a run record's JSON data, derived from the record dataclass's fields.

:class:`Schema` reads each field's annotation (the JSON types it admits) and
its ``bounds`` metadata (the range of every number it holds), and says what
makes some data no record: an unknown or missing field, a value of the wrong
type, a number out of its range. It also holds the JSON encoding of a record
(NaN and infinities are not JSON: they are stored as null).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

__all__ = ["Schema", "clean", "json_default"]


def _types(hint: Any, parsed: bool) -> tuple[type, ...]:
    """The JSON value types a field's annotation accepts (``parsed``: its JSON form is an
    object that a parser reads)."""
    if parsed:
        return (dict,)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _types(arg, False))
    if hint is type(None):
        return (type(None),)
    if hint is Any:
        return (object,)
    origin = typing.get_origin(hint) or hint
    return (int, float) if origin is float else (origin,)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _leaves(value: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every value inside dicts and lists, with where it sits (``['28']``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{where}[{k!r}]")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{where}[{i}]")
    else:
        yield where, value


class Schema:
    """What a record's stored fields admit (see the module docstring)."""

    def __init__(self, cls: type, required: tuple[str, ...],
                 parsers: dict[str, Callable[[Any], Any]], statuses: tuple[str, ...]):
        hints = typing.get_type_hints(cls)
        stored = [f for f in fields(cls) if f.metadata["stored"]]
        self.stored: tuple[str, ...] = tuple(f.name for f in stored)
        self.accepts = {f.name: _types(hints[f.name], f.name in parsers) for f in stored}
        self.bounds = {f.name: f.metadata["bounds"] for f in stored if f.metadata["bounds"]}
        self.required, self.parsers, self.statuses = required, parsers, statuses
        self.floats = tuple(n for n in self.stored if float in self.accepts[n])
        #: fields that hold one number or none (leaderboard columns read them as numbers)
        self.numeric = tuple(n for n in self.stored if n in self.floats
                             or self.accepts[n] == (int, type(None)))

    def problem(self, data: dict[str, Any]) -> str | None:
        """What makes ``data`` (current schema) not a record, or None."""
        unknown = sorted(set(data) - set(self.stored))
        if unknown:
            return f"unknown field(s) {', '.join(unknown)}"
        missing = [k for k in self.required if data.get(k) is None]
        if missing:
            return f"missing field(s) {', '.join(missing)}"
        for name, value in data.items():
            accepts = self.accepts[name]
            wrong = (not isinstance(value, accepts)
                     or (isinstance(value, bool) and bool not in accepts
                         and object not in accepts))
            if wrong:
                expected = " or ".join(t.__name__ for t in accepts).replace("NoneType", "null")
                return f"{name} is {type(value).__name__} {str(value)[:40]!r}, expected {expected}"
            problem = self._out_of_bounds(name, value)
            if problem:
                return problem
        if data.get("status") not in self.statuses:
            return f"status {data.get('status')!r} is not one of {', '.join(self.statuses)}"
        for name, parse in self.parsers.items():
            if name not in data:  # an optional parsed field that a record leaves out
                continue
            try:
                parse(data[name])
            except (TypeError, ValueError) as exc:
                return f"{name}: {exc}"
        return None

    def _out_of_bounds(self, name: str, value: Any) -> str | None:
        if name not in self.bounds:
            return None
        lo, hi = self.bounds[name]
        for where, x in _leaves(value):
            if x is None:
                continue
            if not _is_number(x):
                return f"{name}{where} is {type(x).__name__} {str(x)[:40]!r}, expected a number"
            if not lo <= x <= hi:
                expected = f">= {lo:g}" if hi == math.inf else f"within [{lo:g}, {hi:g}]"
                return f"{name}{where} is {x!r}, expected {expected}"
        return None

    def as_floats(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with the whole numbers of float fields as floats (JSON writes 3.0 as 3)."""
        return {k: float(v) if k in self.floats and isinstance(v, int) else v
                for k, v in data.items()}


def json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def clean(obj: Any) -> Any:
    """NaN/inf are not JSON: store them as null; numpy scalars and tuples as plain values."""
    if hasattr(obj, "tolist") and not isinstance(obj, (list, dict)):
        obj = obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
