"""Scale-equivariant image classifiers and CNN baselines behind one registry.

Models only: no training, data or I/O code lives here (see DESIGN.md).
"""

from __future__ import annotations

from scalebench.methods.registry import (
    DEFAULT_RECIPES,
    ENTRY_POINT_GROUP,
    MethodEntry,
    TrainRecipe,
    UnknownConfigError,
    UnknownMethodError,
    create,
    cross_entropy_loss,
    get_method,
    list_methods,
    register_method,
    reload_plugins,
    resolve_methods,
)

__all__ = [
    "DEFAULT_RECIPES", "ENTRY_POINT_GROUP", "MethodEntry", "TrainRecipe", "UnknownConfigError",
    "UnknownMethodError", "create", "cross_entropy_loss", "get_method", "list_methods",
    "register_method", "reload_plugins", "resolve_methods",
]
