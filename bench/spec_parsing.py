"""Method strings and number lists as a user writes them, to Python values and back.

``fourier[impl=reference,width=2]`` names a method with options; ``cnn,dss`` or
``all`` several; ``0,1,2`` or ``0-5`` a list of seeds or sizes. Parsing them
raises :class:`~bench.errors.BadArgumentError` with a message that says how to
write them; :func:`format_method` writes a method with options back as a label.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from scaleqbench.bench.errors import BadArgumentError

__all__ = ["base_method", "format_method", "frozen", "parse_int_list", "parse_method",
           "parse_methods"]


def frozen(value: Any) -> Any:
    """Lists as tuples, at any depth: a spec is hashable, and a list read back from JSON is
    the tuple that was written."""
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def _literal(text: str) -> Any:
    """A Python literal (lists become tuples: a spec is hashable), else the text itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if isinstance(value, (dict, set)):
        raise BadArgumentError(f"method option value {text!r}: write a number, a string or "
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
