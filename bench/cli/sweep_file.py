"""``bench run --config SWEEP.toml``: a sweep written down as a TOML file (docs/sweeps.md).

A sweep file holds what ``bench run``'s flags hold -- methods (with options, and a
recipe of their own), one dataset or several, seeds, preset, input policy, source,
limits, the output folder, recipe overrides for every method, and the launcher with
its Slurm settings (the fields of :class:`bench.launch.slurm_config.SlurmConfig`)::

    methods = ["cnn", "fourier[width=2]", {name = "sesn", recipe = {lr = 0.005}}]
    datasets = ["mnist-res"]
    seeds = [0, 1, 2]
    preset = "quick"
    input = "published"

    [recipe]
    batch_size = 32

    [launcher]
    name = "slurm"
    partition = "gpu"
    time = "2:00:00"

The whole file is checked before anything runs (:func:`read_sweep_file`): every
problem is one line naming the file and the key. :func:`run_settings` then merges
it under the flags: a flag given on the command line wins over the file, the file
over :data:`bench.cli.options.RUN_DEFAULTS`; the recipe merges key by key (every
method's recipe < a method's own < ``--recipe``).
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaleqbench.bench.cli.method_options import check_recipe
from scaleqbench.bench.cli.options import RUN_DEFAULTS, SLURM_FLAGS
from scaleqbench.bench.errors import BadArgumentError, BenchError, did_you_mean
from scaleqbench.bench.spec import INPUT_CHOICES, PRESETS

__all__ = ["FileProblems", "MethodEntry", "SweepFile", "read_sweep_file", "run_settings"]

#: one method of a sweep: registry name, options, its own recipe overrides
MethodEntry = tuple[str, dict[str, Any], dict[str, Any]]
#: the keys of a sweep file besides ``methods``, ``recipe`` and ``launcher``: each is the
#: ``bench run`` flag of that name, and the kind of its value
_PLAIN: dict[str, tuple[type, ...]] = {
    "dataset": (str,), "datasets": (list,), "seeds": (str, list), "preset": (str,),
    "input": (str,), "source": (str,), "device": (str,), "out": (str,), "data_root": (str,),
    "cache_dir": (str,), "epochs": (int,), "limit_train": (int,), "limit_eval": (int,),
}
_KEYS = ("methods", *_PLAIN, "recipe", "launcher")
_LEAST = {"epochs": 1, "limit_train": 2, "limit_eval": 2}


class FileProblems(BadArgumentError):
    """Every problem of a file, one line each, each naming the file and the key."""

    def __init__(self, problems: list[str]):
        # the CLI prints "bench: error: " before the message: one such line per problem
        super().__init__("\nbench: error: ".join(problems))
        self.problems = problems


@dataclass
class SweepFile:
    """A checked sweep file: the flags it sets, its methods, datasets, recipe and launcher."""

    path: Path
    flags: dict[str, Any] = field(default_factory=dict)  # flag name -> value, as argparse's
    methods: list[MethodEntry] | None = None
    datasets: list[str] | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    launcher: dict[str, Any] = field(default_factory=dict)  # name, Slurm fields, setup...


class _Problems:
    """Collects one line per problem of ``path``: ``FILE: KEY: what is wrong``."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.path}: {key}: {message}")

    def check(self, key: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, or None with its user error recorded under ``key``."""
        try:
            return fn()
        except (BenchError, ValueError, KeyError) as exc:
            self.add(key, str(exc).strip("'\""))
            return None


def _load(path: Path) -> dict[str, Any]:
    try:
        # utf-8-sig: a byte-order mark that some editors write is dropped (tomllib refuses it)
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise BadArgumentError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadArgumentError(f"--config {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadArgumentError(f"{path}: not TOML ({exc})") from None


def read_sweep_file(path: str | Path) -> SweepFile:
    """The sweep file ``path``, checked in full: :class:`FileProblems` lists every problem
    (unknown keys, values of the wrong kind, unknown names, options a method does not take,
    recipe fields and launcher settings that are not)."""
    path = Path(path)
    data, problems = _load(path), _Problems(path)
    out = SweepFile(path)
    for key in data:
        if key not in _KEYS:
            problems.add(key, f"not a sweep setting{did_you_mean(key, _KEYS)}; the settings: "
                              f"{', '.join(_KEYS)}")
    _plain_keys(data, out, problems)
    if "methods" in data:
        out.methods = _methods(data["methods"], problems)
    if "recipe" in data:
        out.recipe = _recipe(data["recipe"], "recipe", problems)
    if "launcher" in data:
        out.launcher = _launcher(data["launcher"], problems)
    if out.methods and not problems.lines:  # the options, on each dataset of the file
        _check_options(out, problems)
    if problems.lines:
        raise FileProblems(problems.lines)
    return out


def _plain_keys(data: dict[str, Any], out: SweepFile, problems: _Problems) -> None:
    """The settings that are flags of ``bench run``, each checked as its flag is."""
    from scaleqbench.bench.spec_parsing import parse_int_list
    from scaleqbench.datasets import dataset_info

    for key, kinds in _PLAIN.items():
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, kinds) or isinstance(value, bool):
            problems.add(key, f"must be {' or '.join(_KIND[k] for k in kinds)}, got {value!r}")
        elif key in _LEAST and value < _LEAST[key]:
            problems.add(key, f"must be >= {_LEAST[key]}, got {value}")
        elif key == "preset" and value not in PRESETS:
            problems.add(key, f"unknown preset {value!r}{did_you_mean(value, PRESETS)}")
        elif key == "input" and value not in INPUT_CHOICES:
            problems.add(key, f"{value!r} is not one of {', '.join(INPUT_CHOICES)}")
        elif key == "seeds":
            text = value if isinstance(value, str) else ",".join(map(str, value))
            if problems.check(key, lambda: parse_int_list(text, "seed", 0, 2**32 - 1)):
                out.flags["seeds"] = text
        elif key in ("dataset", "datasets"):
            names = [value] if key == "dataset" else value
            if not names or not all(isinstance(n, str) for n in names):
                problems.add(key, f"must name datasets, got {value!r}")
            elif all(problems.check(key, lambda n=n: dataset_info(n)) for n in names):
                out.datasets = list(dict.fromkeys(names))
        else:
            out.flags[key] = value
    if "dataset" in data and "datasets" in data:
        problems.add("datasets", "give dataset or datasets, not both")


_KIND = {str: "text", list: "a list", int: "an integer", dict: "a table"}


def _methods(value: Any, problems: _Problems) -> list[MethodEntry] | None:
    """``methods``: one string (``"cnn,fourier[width=2]"``) or a list of strings and tables
    ``{name = "cnn", options = {...}, recipe = {...}}``."""
    from scaleqbench.bench.spec_parsing import parse_methods
    from scaleqbench.methods import resolve_methods

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        problems.add("methods", f"must be text or a list of methods, got {value!r}")
        return None
    out: list[MethodEntry] = []
    for i, item in enumerate(items):
        key = f"methods[{i}]"
        if isinstance(item, str):
            found = problems.check(key, lambda item=item: parse_methods(item))
            out += [(n, kw, {}) for n, kw in found or ()]
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {"name", "options", "recipe"})
            if unknown or not isinstance(item.get("name"), str):
                problems.add(key, "a method table holds name (text), options and recipe "
                                  f"(tables), got {item!r}")
                continue
            names = problems.check(f"{key}.name", lambda: resolve_methods(item["name"]))
            options = item.get("options", {})
            if not isinstance(options, dict):
                problems.add(f"{key}.options", f"must be a table, got {options!r}")
                continue
            recipe = _recipe(item.get("recipe", {}), f"{key}.recipe", problems)
            out += [(n, dict(options), recipe) for n in names or ()]
        else:
            problems.add(key, f"must be a method name or table, got {item!r}")
    return out


def _recipe(value: Any, key: str, problems: _Problems) -> dict[str, Any]:
    """A recipe table, each field checked on its own (one line per bad field)."""
    if not isinstance(value, dict):
        problems.add(key, f"must be a table of recipe fields, got {value!r}")
        return {}
    out: dict[str, Any] = {}
    for name, v in value.items():
        checked = problems.check(f"{key}.{name}", lambda name=name, v=v: check_recipe(
            {name: v}, flag="recipe"))
        out.update(checked or {})
    return out


def _launcher(value: Any, problems: _Problems) -> dict[str, Any]:
    """``[launcher]``: ``name`` (a launcher), ``launcher_config`` (a file) and Slurm fields."""
    from scaleqbench.bench.launch.registry import LAUNCHERS
    from scaleqbench.bench.launch.slurm_config import FIELDS, _coerce

    if not isinstance(value, dict):
        problems.add("launcher", f"must be a table, got {value!r}")
        return {}
    out: dict[str, Any] = {}
    for key, v in value.items():
        where = f"launcher.{key}"
        if key == "name":
            if v in LAUNCHERS:
                out[key] = v
            else:
                problems.add(where, f"unknown launcher {v!r}{did_you_mean(v, LAUNCHERS)}; "
                                    f"known: {', '.join(LAUNCHERS)}")
        elif key == "launcher_config":
            out[key] = str(v)
        elif key not in FIELDS:
            problems.add(where, f"not a launcher setting{did_you_mean(key, FIELDS)}; the "
                                f"Slurm settings: {', '.join(sorted(FIELDS))}")
        elif problems.check(where, lambda key=key, v=v: _coerce({key: v}, "the sweep file")):
            out[key] = v
    slurm = set(out) - {"name", "launcher_config"}
    if slurm and out.get("name") == "local":  # no name: --launcher may still say slurm
        problems.add("launcher", f"{', '.join(sorted(slurm))}: Slurm settings, for "
                                 'name = "slurm" only')
    return out


def _check_options(sweep: SweepFile, problems: _Problems) -> None:
    """Each method's options against the method, on every dataset of the file."""
    from scaleqbench.bench.cli.validate import check_options_on
    from scaleqbench.bench.spec import preset

    config = preset(sweep.flags.get("preset", RUN_DEFAULTS["preset"])).config
    for i, (name, kwargs, _) in enumerate(sweep.methods or ()):
        for dataset in sweep.datasets or [str(RUN_DEFAULTS["dataset"])]:
            problems.check(f"methods[{i}]", lambda: check_options_on(
                [(name, kwargs)], dataset, config))


def run_settings(args: argparse.Namespace) -> argparse.Namespace:
    """``bench run``'s settings: the flags given, then the sweep file (``--config``), then
    :data:`~bench.cli.options.RUN_DEFAULTS`. Adds ``datasets`` (a list), ``method_entries``
    (the file's methods, when ``--methods`` is not given) and ``file_recipe``. Returns a new
    namespace; ``args`` is left as it was."""
    out = argparse.Namespace(**vars(args))
    sweep = read_sweep_file(args.config) if getattr(args, "config", None) else None
    out.method_entries, out.file_recipe = None, {}
    if sweep is not None:
        for key, value in sweep.flags.items():
            if getattr(out, key, None) is None:
                setattr(out, key, value)
        if out.methods is None:
            out.method_entries = sweep.methods
        if out.dataset is None and sweep.datasets:
            out.datasets = sweep.datasets
        out.file_recipe = sweep.recipe
        _launcher_settings(out, sweep.launcher)
    for key, value in RUN_DEFAULTS.items():
        if getattr(out, key, None) is None:
            setattr(out, key, value)
    if not getattr(out, "datasets", None):
        out.datasets = [out.dataset]
    return out


def _launcher_settings(out: argparse.Namespace, launcher: dict[str, Any]) -> None:
    """The file's ``[launcher]`` under the launcher flags given."""
    if out.launcher is None and "name" in launcher:
        out.launcher = launcher["name"]
    if out.launcher_config is None and "launcher_config" in launcher:
        out.launcher_config = launcher["launcher_config"]
    for key in SLURM_FLAGS:
        if getattr(out, key, None) is None and key in launcher:
            setattr(out, key, launcher[key])
    extra = launcher.get("sbatch_extra") or {}
    # the file's first: a --sbatch-extra flag of the same key comes later and wins
    out.sbatch_extra = [f"{k}={v}" for k, v in dict(extra).items()] + list(out.sbatch_extra)
    if "setup" in launcher:
        out.setup = launcher["setup"]
