"""scaleqbench's harness: CLI, specs, training and evaluation, metrics, launchers, records.

The library API is importable from here, and is loaded on first use (a module
``__getattr__``): ``import scaleqbench.bench`` imports neither torch nor pandas and
changes nothing in the process. See docs/api.md:

* :func:`check_equivariance` -- a model's equivariance error on a batch of images
  (:mod:`.run.equivariance`), returning an :class:`EquivarianceResult`;
* :func:`load_results` -- experiment folders as a pandas DataFrame, one row per run,
  and :func:`history_frame` for the per-epoch history (:mod:`.api.results`);
* :func:`load_run` -- a run's trained model from its checkpoint (:mod:`.api.runs`);
* :func:`evaluate` -- any model of the model protocol measured as a run measures it:
  accuracy per size, scale consistency, equivariance (:mod:`.api.evaluation`);
* :func:`create`, :func:`list_methods` -- the model registry (:mod:`scaleqbench.methods`);
* ``__version__`` -- the installed distribution's version.

The CLI (:func:`scaleqbench.bench.cli.main.main`) and the job entry point
(:class:`scaleqbench.bench.launch.job.SweepJob`) opt in to the allocator tuning of
:mod:`scaleqbench.bench.run.cpu_memory`; a library user may call ``tune_cpu_allocator()`` too.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "EquivarianceResult": "scaleqbench.bench.run.equivariance",
    "check_equivariance": "scaleqbench.bench.run.equivariance",
    "evaluate": "scaleqbench.bench.api.evaluation",
    "history_frame": "scaleqbench.bench.api.results",
    "load_results": "scaleqbench.bench.api.results",
    "load_run": "scaleqbench.bench.api.runs",
    "create": "scaleqbench.methods",
    "list_methods": "scaleqbench.methods",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def _version() -> str:
    """The installed distribution's version (editable or wheel); "unknown" when scaleqbench is
    imported from a tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scaleqbench")
    except PackageNotFoundError:
        return "unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
