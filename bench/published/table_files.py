"""Published tables written down as data: ``tables/<name>.toml``, shipped as package data.

A table file says what a paper's table measured, so that ``bench reproduce`` can run it:
the methods (our registry names, in the paper's row order), the preset and input policy,
the seeds (realizations), and its columns, each a dataset (protocol), an optional
training-set size (``train_images``: the Fourier paper's 5,000-image column) and the
metrics it prints. The published values themselves live in ``published.csv``, the one
home of every published number, found by dataset, method, metric and ``train_images``.

``[embedded]`` says how the table is scaled down to the 5,000 embedded digits (preset,
seeds, epochs, test images, each column's training-set size); a shipped table without it
(STL-10) needs the full data. A table file of one's own (``bench reproduce my.toml``,
docs/sweeps.md) has the same format, a few fields optional (:func:`parse_table`), and
may hold a ``[recipe]`` of training-recipe overrides. Every problem of a file is named at
once, one line each (:class:`TableProblems`).
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from scaleqbench.bench.errors import BadArgumentError, UnknownNameError, did_you_mean

__all__ = ["METRICS", "Column", "Embedded", "Table", "TableProblems", "is_table_file",
           "list_tables", "load_table", "parse_table"]

#: the metrics a column may print: how a record gives it and how it is shown
METRICS: dict[str, tuple[str, float, str]] = {  # name -> (display header, scale, format)
    "test_acc": ("acc (%)", 100.0, ".2f"),
    "test_err": ("error (%)", 100.0, ".2f"),
    "scale_consistency": ("scale consist. (%)", 100.0, ".2f"),
    "eq_err": ("equiv. err", 1.0, ".2e"),
    # the Fourier paper's own equivariance error (bench reproduce reads the run's rahman-yeh
    # operator: datasets/rahman_yeh.py, bench/run/rahman_yeh.py)
    "eq_err_rahman_yeh": ("equiv. err (authors' measure)", 1.0, ".2e"),
}
_TABLES = "tables"
_MISSING = object()  # a required field's default: none


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
    # per metric, the methods whose published value was measured as we measure it (the
    # authors published the code of that measurement for them); the others' published values
    # are shown as "protocol partly unknown", without a delta. A metric not named here: all.
    measured_as_published: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def options_for(self, method: str) -> dict[str, Any]:
        """``method``'s options in this column (``{}`` for most)."""
        return dict(dict(self.method_options).get(method, ()))

    def protocol_known(self, metric: str, method: str) -> bool:
        """Whether ``method``'s published ``metric`` was measured the way ours is."""
        known = dict(self.measured_as_published)
        return metric not in known or method in known[metric]


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
    recipe: tuple[tuple[str, Any], ...] = ()  # overrides of every method's training recipe
    file: str | None = None  # a table file of one's own (None: a shipped table)


def _files():
    return importlib.resources.files("scaleqbench.bench.published").joinpath(_TABLES)


def list_tables() -> list[str]:
    """The names of the shipped tables, sorted."""
    return sorted(p.name.removesuffix(".toml") for p in _files().iterdir()
                  if p.name.endswith(".toml"))


class TableProblems(ValueError):
    """Every problem of a table file, one line each, each naming the file and the field."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _Reader:
    """Reads the fields of a table file, collecting one line per problem (see
    :func:`parse_table`)."""

    def __init__(self, where: str):
        self.where, self.problems = where, []

    def bad(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def need(self, d: dict, key: str, kind: type, where: str, default: Any = _MISSING) -> Any:
        if key not in d:
            if default is _MISSING:
                self.bad(where, f"missing {key!r}")
            return None if default is _MISSING else default
        value = d[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            self.bad(where, f"{key!r} must be {kind.__name__}, got {value!r}")
            return None
        return value

    def ints(self, d: dict, key: str, where: str) -> tuple[int, ...]:
        values = self.need(d, key, list, where)
        if values is not None and (not values or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)):
            self.bad(where, f"{key!r}: expected a non-empty list of non-negative integers, "
                            f"got {values!r}")
        return tuple(values or ())


def _column(r: _Reader, c: Any, cw: str) -> Column | None:
    if not isinstance(c, dict):
        r.bad(cw, f"a column is a table, got {c!r}")
        return None
    metrics = r.need(c, "metrics", list, cw)
    if metrics is not None and (not metrics or [m for m in metrics if m not in METRICS]):
        r.bad(cw, f"metrics must be some of {', '.join(METRICS)}, got {tuple(metrics)}")
    n = c.get("train_images")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 2):
        r.bad(cw, f"train_images must be an integer >= 2, got {n!r}")
    options = c.get("method_options", {})
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        r.bad(cw, f"method_options must map method names to option tables, got {options!r}")
        options = {}
    known = c.get("measured_as_published", {})
    if not isinstance(known, dict) or not all(
            k in (metrics or ()) and isinstance(v, list) and all(isinstance(m, str) for m in v)
            for k, v in known.items()):
        r.bad(cw, f"measured_as_published must map metrics of the column to lists of method "
                  f"names, got {known!r}")
        known = {}
    unknown = sorted(set(c) - {"key", "label", "dataset", "metrics", "train_images",
                               "method_options", "measured_as_published"})
    if unknown:
        r.bad(cw, f"unknown field(s) {', '.join(unknown)}")
    return Column(r.need(c, "key", str, cw), r.need(c, "label", str, cw),
                  r.need(c, "dataset", str, cw), tuple(metrics or ()), n,
                  tuple((m, tuple(sorted(o.items()))) for m, o in options.items()),
                  tuple((k, tuple(v)) for k, v in known.items()))


def _embedded(r: _Reader, e: Any, columns: list[Column], ew: str) -> Embedded | None:
    if not isinstance(e, dict):
        r.bad(ew, f"must be a table, got {e!r}")
        return None
    sizes = e.get("train_images", {})
    if not isinstance(sizes, dict) or set(sizes) - {c.key for c in columns} or not all(
            isinstance(v, int) and v >= 2 for v in sizes.values()):
        r.bad(ew, f"train_images must map column keys to integers >= 2, got {sizes!r}")
        sizes = {}
    limits = {k: e.get(k) for k in ("epochs", "test_images")}
    if not all(v is None or (isinstance(v, int) and v >= 2 - (k == "epochs"))
               for k, v in limits.items()):
        r.bad(ew, f"epochs must be >= 1 and test_images >= 2, got {limits}")
        limits = {"epochs": None, "test_images": None}
    return Embedded(r.need(e, "preset", str, ew), r.ints(e, "seeds", ew),
                    r.need(e, "note", str, ew), dict(sizes), **limits)


#: the fields of a table file
_FIELDS = ("name", "title", "paper", "methods", "preset", "input", "seeds", "seeds_note",
           "recipe", "columns", "embedded")


def parse_table(data: dict, where: str, user: bool = False) -> Table:
    """A :class:`Table` from a parsed table file; :class:`TableProblems` (a ``ValueError``)
    with one line per missing or malformed field, each naming ``where`` and the field.

    A ``user`` table (a file of one's own, ``bench reproduce PATH.toml``) may leave out
    ``name`` (the file's name), ``title``, ``paper`` and ``seeds_note``, and without
    ``[embedded]`` runs as it is written on the embedded source too (its preset, seeds and
    training-set sizes). ``recipe`` (a table of training-recipe fields) overrides every
    method's recipe; its fields are checked by the command line.
    """
    r = _Reader(where)
    optional = (lambda default: default) if user else (lambda default: _MISSING)
    for key in sorted(set(data) - set(_FIELDS)):
        r.bad(where, f"unknown field {key!r}{did_you_mean(key, _FIELDS)}")
    columns = [col for i, c in enumerate(r.need(data, "columns", list, where) or [])
               if (col := _column(r, c, f"{where} column {i + 1}")) is not None]
    if not columns or len({c.key for c in columns}) != len(columns):
        r.bad(where, "columns must be non-empty with distinct keys")
    methods = r.need(data, "methods", list, where)
    if methods is not None and (not methods or not all(isinstance(m, str) for m in methods)):
        r.bad(where, f"'methods' must be a non-empty list of method names, got {methods!r}")
    recipe = r.need(data, "recipe", dict, where, default={})
    name = r.need(data, "name", str, where, optional(Path(where).stem))
    table = Table(
        name=name, title=r.need(data, "title", str, where, optional(name)),
        paper=r.need(data, "paper", str, where, optional("(not given)")),
        methods=tuple(methods or ()), preset=r.need(data, "preset", str, where),
        input=r.need(data, "input", str, where), seeds=r.ints(data, "seeds", where),
        seeds_note=r.need(data, "seeds_note", str, where, optional("the table's choice")),
        columns=tuple(columns), embedded=None, recipe=tuple(sorted((recipe or {}).items())),
        file=where if user else None)
    if "embedded" in data:
        table = replace(table, embedded=_embedded(r, data["embedded"], columns,
                                                  f"{where} [embedded]"))
    elif user and not r.problems:
        table = replace(table, embedded=Embedded(
            table.preset, table.seeds, "the table as written, on the embedded digits",
            {c.key: c.train_images for c in columns if c.train_images is not None}))
    if r.problems:
        raise TableProblems(r.problems)
    return table


def is_table_file(name: str) -> bool:
    """Whether ``bench reproduce NAME`` names a file of one's own rather than a shipped table."""
    return name.endswith(".toml") or "/" in name or Path(name).is_file()


def load_table(name: str) -> Table:
    """The shipped table ``name`` (:class:`UnknownNameError`, with a suggestion, otherwise), or
    a table file of one's own (a path, :func:`is_table_file`): :class:`TableProblems` lists
    what is wrong with it, :class:`BadArgumentError` says when it cannot be read."""
    if is_table_file(name):
        path = Path(name)
        try:
            # utf-8-sig: a byte-order mark that some editors write is dropped (tomllib refuses it)
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise BadArgumentError(f"table file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise BadArgumentError(f"{path}: cannot read it as TOML ({exc})") from None
        return parse_table(data, str(path), user=True)
    names = list_tables()
    if name not in names:
        raise UnknownNameError(f"unknown table {name!r}{did_you_mean(name, names)}; "
                               f"available: {', '.join(names)} (or a table file, PATH.toml)")
    text = _files().joinpath(f"{name}.toml").read_text(encoding="utf-8")
    table = parse_table(tomllib.loads(text), f"tables/{name}.toml")
    if table.name != name:
        raise ValueError(f"tables/{name}.toml: its name is {table.name!r}, not {name!r}")
    return table
