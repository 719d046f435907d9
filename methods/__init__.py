"""Scale-equivariant image classifiers and CNN baselines behind one registry.

Models only: no training, data or I/O code lives here (see DESIGN.md).

Importing the package fills the registry: :mod:`.registry` holds the machinery
and knows no method; the built-in families imported below register theirs with
``@register_method`` (a new family adds one import line here), and
:mod:`.timm_baseline` registers the ``timm:`` prefix. Third-party methods
(entry-point group ``scaleqbench.methods``) load on the first look-up.
"""

from __future__ import annotations

from scaleqbench.methods.registry import (
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
    register_prefix,
    reload_plugins,
    resolve_methods,
    style_choices,
    style_of,
)
from scaleqbench.methods.style import MethodStyle

# the built-in families and prefixes: imported for their registrations
from scaleqbench.methods import (  # noqa: F401
    cnn, disco, dss, fourier, multicolumn, sesn, sevf, ss_cnn, timm_baseline,
)

__all__ = [
    "DEFAULT_RECIPES", "ENTRY_POINT_GROUP", "MethodEntry", "MethodStyle", "TrainRecipe",
    "UnknownConfigError", "UnknownMethodError", "create", "cross_entropy_loss", "get_method",
    "list_methods", "register_method", "register_prefix", "reload_plugins", "resolve_methods",
    "style_choices", "style_of",
]
