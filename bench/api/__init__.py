"""The library API: results as DataFrames, trained models from their checkpoints, any model
evaluated in one call, and the equivariance check, for use from Python (notebooks, scripts)
rather than the ``bench`` command.

Import these from :mod:`scaleqbench.bench` (lazily re-exported there); docs/api.md shows
them in use.
"""

from __future__ import annotations

from scaleqbench.bench.api.evaluation import evaluate
from scaleqbench.bench.api.results import (
    PER_SIZE_PREFIXES,
    ResultsWarning,
    history_frame,
    load_results,
)
from scaleqbench.bench.api.runs import checkpoint_of, load_run, model_from_checkpoint
from scaleqbench.bench.run.equivariance import (
    EquivarianceResult,
    check_equivariance,
    check_operators,
    default_sizes,
)

__all__ = ["PER_SIZE_PREFIXES", "EquivarianceResult", "ResultsWarning", "check_equivariance",
           "check_operators", "checkpoint_of", "default_sizes", "evaluate", "history_frame",
           "load_results", "load_run", "model_from_checkpoint"]
