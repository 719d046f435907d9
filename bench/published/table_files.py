"""Published tables written down as data: ``tables/<name>.toml``, shipped as package data.

A table file says what a paper's table measured, so that ``bench reproduce`` can run it:
the methods (our registry names, in the paper's row order), the preset and input policy,
the seeds (realizations), and its columns, each a dataset (protocol), an optional
training-set size (``train_images``: the Fourier paper's 5,000-image column) and the
metrics it prints. The published values themselves live in ``published.csv``, the one
home of every published number, found by dataset, method, metric and ``train_images``.

``[embedded]`` says how the table is scaled down to the 5,000 embedded digits (preset,
seeds, epochs, test images, each column's training-set size); a table without it (STL-10)
needs the full data.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field
from typing import Any

from scaleqbench.bench.errors import UnknownNameError, did_you_mean

__all__ = ["METRICS", "Column", "Embedded", "Table", "list_tables", "load_table"]

#: the metrics a column may print: how a record gives it and how it is shown
METRICS: dict[str, tuple[str, float, str]] = {  # name -> (display header, scale, format)
    "test_acc": ("acc (%)", 100.0, ".2f"),
    "test_err": ("error (%)", 100.0, ".2f"),
    "scale_consistency": ("scale consist. (%)", 100.0, ".2f"),
    "eq_err": ("equiv. err", 1.0, ".2e"),
}
_TABLES = "tables"


@dataclass(frozen=True)
class Column:
    """One column group of a table: a protocol and the metrics the paper printed for it."""

    key: str
    label: str
    dataset: str
    metrics: tuple[str, ...]
    train_images: int | None = None  # None: the protocol's full training split
    # the options a method takes in this column, as the paper trained it there (SESN's "+"
    # column uses its "+" hyper-parameters): ((method, ((key, value), ...)), ...)
    method_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def options_for(self, method: str) -> dict[str, Any]:
        """``method``'s options in this column (``{}`` for most)."""
        return dict(dict(self.method_options).get(method, ()))


@dataclass(frozen=True)
class Embedded:
    """How the table is scaled down to the embedded digits."""

    preset: str
    seeds: tuple[int, ...]
    note: str
    train_images: dict[str, int] = field(default_factory=dict)  # column key -> images
    epochs: int | None = None  # None: the preset's recipe
    test_images: int | None = None  # None: the whole test split (a run's limit_eval)


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    paper: str
    methods: tuple[str, ...]
    preset: str
    input: str
    seeds: tuple[int, ...]
    seeds_note: str
    columns: tuple[Column, ...]
    embedded: Embedded | None


def _files():
    return importlib.resources.files("scaleqbench.bench.published").joinpath(_TABLES)


def list_tables() -> list[str]:
    """The names of the shipped tables, sorted."""
    return sorted(p.name.removesuffix(".toml") for p in _files().iterdir()
                  if p.name.endswith(".toml"))


def _need(d: dict, key: str, kind: type, where: str):
    if key not in d:
        raise ValueError(f"{where}: missing {key!r}")
    value = d[key]
    if not isinstance(value, kind):
        raise ValueError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _ints(values: list, where: str) -> tuple[int, ...]:
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                             for v in values):
        raise ValueError(f"{where}: expected a non-empty list of non-negative integers, "
                         f"got {values!r}")
    return tuple(values)


def parse_table(data: dict, where: str) -> Table:
    """A :class:`Table` from a parsed table file; ``ValueError`` naming ``where`` and the field
    when a field is missing or malformed."""
    columns = []
    for i, c in enumerate(_need(data, "columns", list, where)):
        cw = f"{where} column {i + 1}"
        metrics = tuple(_need(c, "metrics", list, cw))
        unknown = [m for m in metrics if m not in METRICS]
        if not metrics or unknown:
            raise ValueError(f"{cw}: metrics must be some of {', '.join(METRICS)}, got {metrics}")
        n = c.get("train_images")
        if n is not None and (not isinstance(n, int) or n < 2):
            raise ValueError(f"{cw}: train_images must be an integer >= 2, got {n!r}")
        options = c.get("method_options", {})
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ValueError(f"{cw}: method_options must map method names to option tables, "
                             f"got {options!r}")
        columns.append(Column(_need(c, "key", str, cw), _need(c, "label", str, cw),
                              _need(c, "dataset", str, cw), metrics, n,
                              tuple((m, tuple(sorted(o.items()))) for m, o in options.items())))
    if not columns or len({c.key for c in columns}) != len(columns):
        raise ValueError(f"{where}: columns must be non-empty with distinct keys")
    embedded = None
    if "embedded" in data:
        e, ew = data["embedded"], f"{where} [embedded]"
        sizes = dict(e.get("train_images", {}))
        unknown = set(sizes) - {c.key for c in columns}
        if unknown or not all(isinstance(v, int) and v >= 2 for v in sizes.values()):
            raise ValueError(f"{ew}: train_images must map column keys to integers >= 2, "
                             f"got {sizes!r}")
        limits = {k: e.get(k) for k in ("epochs", "test_images")}
        if not all(v is None or (isinstance(v, int) and v >= 2 - (k == "epochs"))
                   for k, v in limits.items()):
            raise ValueError(f"{ew}: epochs must be >= 1 and test_images >= 2, got {limits}")
        embedded = Embedded(_need(e, "preset", str, ew), _ints(_need(e, "seeds", list, ew), ew),
                            _need(e, "note", str, ew), sizes, **limits)
    return Table(name=_need(data, "name", str, where), title=_need(data, "title", str, where),
                 paper=_need(data, "paper", str, where),
                 methods=tuple(_need(data, "methods", list, where)),
                 preset=_need(data, "preset", str, where), input=_need(data, "input", str, where),
                 seeds=_ints(_need(data, "seeds", list, where), where),
                 seeds_note=_need(data, "seeds_note", str, where), columns=tuple(columns),
                 embedded=embedded)


def load_table(name: str) -> Table:
    """The shipped table ``name``; :class:`UnknownNameError` (with a suggestion) otherwise."""
    names = list_tables()
    if name not in names:
        raise UnknownNameError(f"unknown table {name!r}{did_you_mean(name, names)}; "
                               f"available: {', '.join(names)}")
    text = _files().joinpath(f"{name}.toml").read_text(encoding="utf-8")
    table = parse_table(tomllib.loads(text), f"tables/{name}.toml")
    if table.name != name:
        raise ValueError(f"tables/{name}.toml: its name is {table.name!r}, not {name!r}")
    return table
