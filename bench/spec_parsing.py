"""Method strings, recipe overrides and number lists as a user writes them, to Python values
and back.

``fourier[impl=reference,width=2]`` names a method with options; ``cnn,dss`` or
``all`` several; ``lr=0.01,batch_size=32`` overrides fields of a training recipe;
``0,1,2`` or ``0-5`` a list of seeds or sizes. Parsing them raises
:class:`~bench.errors.BadArgumentError` with a message that says how to write them;
:func:`format_method` and :func:`format_recipe` write them back as (part of) a label:
``cnn[channels=(8, 16, 24)] {batch_size=32,lr=0.01}``.
"""

from __future__ import annotations

import ast
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from scaleqbench.bench.errors import BadArgumentError

__all__ = ["Pairs", "base_method", "check_field_values", "field_types", "format_method",
           "format_recipe", "frozen", "pairs", "parse_int_list", "parse_method", "parse_methods",
           "parse_recipe", "plain"]

#: names and values, sorted by name: options and overrides as a (hashable) spec holds them
Pairs = tuple[tuple[str, Any], ...]


def frozen(value: Any) -> Any:
    """Lists as tuples, at any depth: a spec is hashable, and a list read back from JSON is
    the tuple that was written."""
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def plain(value: Any) -> Any:
    """Tuples as lists, at any depth: JSON data (:func:`frozen` is the way back)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def pairs(values: Mapping[str, Any], what: str) -> Pairs:
    """``values`` sorted by name, lists as tuples (hashable); ``ValueError`` naming ``what``
    unless it maps names (text) to values."""
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise ValueError(f"{what} must map names to values, got {values!r}")
    return tuple(sorted((k, frozen(v)) for k, v in values.items()))


def _accepted(hint: Any) -> tuple[type, ...]:
    """The types a plain field annotation (``str``, ``int``, ``int | None``...) admits."""
    if isinstance(hint, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _accepted(arg))
    return (type(None),) if hint is type(None) else (hint,)


def field_types(cls: type, skip: tuple[str, ...]) -> dict[str, tuple[type, ...]]:
    """The types each plain field of the dataclass ``cls`` admits, those in ``skip`` (checked
    as they are made) left out."""
    return {name: _accepted(hint) for name, hint in typing.get_type_hints(cls).items()
            if name not in skip}


def check_field_values(obj: Any, accepted: Mapping[str, tuple[type, ...]]) -> None:
    """Every field of ``obj`` named in ``accepted`` has one of its types (``bool`` is no
    ``int``), and every number is >= 0 (a seed, an epoch count, a number of images);
    ``ValueError`` says which is not."""
    for name, accepts in accepted.items():
        value = getattr(obj, name)
        if not isinstance(value, accepts) or (isinstance(value, bool) and bool not in accepts):
            expected = " or ".join(t.__name__ for t in accepts).replace("NoneType", "null")
            raise ValueError(f"{name} is {type(value).__name__} {value!r}, expected {expected}")
        if isinstance(value, int) and value < 0:
            raise ValueError(f"{name} is {value}, expected a number >= 0")


def _literal(text: str, what: str = "method option") -> Any:
    """A Python literal (lists become tuples: a spec is hashable), else the text itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if isinstance(value, (dict, set)):
        raise BadArgumentError(f"{what} value {text!r}: write a number, a string or "
                               "a tuple such as (8,16,24)")
    return frozen(value)


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


def parse_recipe(text: str) -> dict[str, Any]:
    """``'lr=0.01,batch_size=32'`` -> ``{'lr': 0.01, 'batch_size': 32}``: the syntax of
    ``--recipe``. Which keys a recipe has and the kind of each value are checked by the
    command line against the recipe itself (:mod:`bench.cli.method_options`)."""
    out: dict[str, Any] = {}
    for item in _split_top_level(str(text)):
        k, eq, v = item.partition("=")
        k = k.strip()
        if not eq or not k or not v.strip():
            raise BadArgumentError(f"recipe override {item!r} in {text!r} is not key=value; "
                                   "write e.g. lr=0.01,batch_size=32")
        if not k.isidentifier():
            raise BadArgumentError(f"recipe field {k!r} in {text!r} is not a name; write e.g. "
                                   "lr=0.01,batch_size=32")
        if k in out:
            raise BadArgumentError(f"recipe field {k!r} is given twice in {text!r}")
        out[k] = _literal(v.strip(), "recipe")
    if not out:
        raise BadArgumentError(f"no recipe override in {text!r}; write e.g. lr=0.01,batch_size=32")
    return out


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
    """A method's label: ``fourier[impl=reference,width=2]`` (options sorted), or its name."""
    if not kwargs:
        return name
    return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(kwargs.items()))}]"


def format_recipe(overrides: dict[str, Any]) -> str:
    """Recipe overrides as a label shows them: ``{batch_size=32,lr=0.01}`` (sorted), or ""."""
    if not overrides:
        return ""
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) + "}"


def base_method(label: str) -> str:
    """A method label's registry name, options, recipe overrides and marks stripped:
    ``fourier[impl=x] {lr=0.1}`` and ``fourier (stale)`` -> ``fourier``."""
    found = re.match(r"[^\[{\s]+", str(label).strip())
    return found.group(0) if found else str(label)


#: the most values a list such as ``--seeds 0-999`` may expand to: a sweep of more runs than
#: this is a typo far more often than a plan (and would build a dataset cache per seed)
MAX_LIST_VALUES = 10_000


def parse_int_list(text: str, what: str, lo: int | None = None, hi: int | None = None,
                   most: int = MAX_LIST_VALUES) -> list[int]:
    """``'0,1,2'``, ``'0-5'`` or a mix, as sorted unique ints within [lo, hi]; at most ``most``
    of them, counted before any range is expanded."""
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
        for v in (a, b):
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
                raise BadArgumentError(f"{what} {v} is out of range {bounds}")
        if len(values) + (b - a + 1) > most:
            raise BadArgumentError(f"{text!r} gives {len(values) + b - a + 1:,} {what}s; at most "
                                   f"{most:,} are taken at once: split the sweep")
        values.extend(range(a, b + 1))
    if not values:
        raise BadArgumentError(f"no {what} given in {text!r}")
    for v in values:
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise BadArgumentError(f"{what} {v} is out of range {bounds}")
    return sorted(set(values))
