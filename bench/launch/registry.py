"""The launchers by name: ``--launcher NAME`` -> a :class:`~scaleqbench.bench.launch.api.Launcher`.

A new backend (another scheduler, a multi-GPU node) is one class implementing the protocol
and one entry in :data:`LAUNCHERS`. This module imports no backend: ``bench --help`` reads
the names from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from scaleqbench.bench.errors import BadArgumentError, UnknownNameError
from scaleqbench.bench.launch.api import Launcher

__all__ = ["LAUNCHERS", "launcher_class", "make_launcher"]


#: ``--launcher`` name -> launcher class
# a class or "module:Class", imported when first asked for: the parser lists the names
# (``--launcher`` choices) without importing a backend (submitit)
LAUNCHERS: dict[str, Any] = {
    "local": "scaleqbench.bench.launch.local:LocalLauncher",
    "slurm": "scaleqbench.bench.launch.slurm:SlurmLauncher",
}


def _given(value: Any) -> bool:
    """Whether an option was given on the command line (0 is a value; None, False, [] are not)."""
    return not (value is None or value is False or
                (isinstance(value, (list, tuple, str)) and not value))


def launcher_class(name: str) -> type[Launcher]:
    try:
        found = LAUNCHERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown launcher {name!r}; known: "
                               f"{', '.join(LAUNCHERS)}") from None
    if isinstance(found, str):
        module, _, attr = found.partition(":")
        found = getattr(importlib.import_module(module), attr)
    return found


def make_launcher(name: str, options: Mapping[str, Any], progress: bool = True) -> Launcher:
    """The launcher ``--launcher name`` asks for, configured from the ``bench run`` options; an
    option this launcher does not take is an error, not silently ignored."""
    cls = launcher_class(name)
    foreign = [k for k, v in options.items() if _given(v) and k not in cls.accepts]
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        owners = [n for n in LAUNCHERS if set(foreign) <= launcher_class(n).accepts]
        where = " or ".join(f"--launcher {n}" for n in owners) or "no launcher"
        raise BadArgumentError(f"{flags} only apply to {where} (--launcher {name} does not "
                               f"take them); pass {where} or drop them")
    return cls.from_options({k: v for k, v in options.items() if k in cls.accepts}, progress)
