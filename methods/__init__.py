"""Scale-equivariant image classifiers and CNN baselines behind one registry.

Models only: no training, data or I/O code lives here. A method is a builder, its
card (:class:`MethodCard`: provenance, figure style, input policy) and its
configurations, all beside its model; the model follows the protocol of
:mod:`.protocol`. How a method is trained -- its recipe per configuration and its
loss -- is the harness's concern and lives in :mod:`scaleqbench.bench.run.recipes`.

Importing the package fills the registry: :mod:`.registry` holds the machinery and
knows no method; the built-in families imported below register theirs with
``@register_method`` (a new family adds one import line here), and
:mod:`.timm_baseline` registers the ``timm:`` prefix. Third-party methods
(entry-point group ``scaleqbench.methods``, :mod:`.plugins`) load on the first
look-up.
"""

from __future__ import annotations

from scaleqbench.methods.method_card import (
    BUILTIN,
    MethodCard,
    MethodEntry,
    UnknownConfigError,
    UnknownMethodError,
)
from scaleqbench.methods.plugins import ENTRY_POINT_GROUP, LEGACY_ENTRY_POINT_GROUP
from scaleqbench.methods.protocol import (
    HasScaleAxes,
    HoldsWorkspace,
    PerSizeClassifier,
    ScaleModel,
)
from scaleqbench.methods.registry import (
    create,
    family_of,
    get_method,
    list_methods,
    register_method,
    register_prefix,
    reload_plugins,
    resolve_methods,
    style_choices,
    style_of,
    unregister_method,
)
from scaleqbench.methods.style import MethodStyle

# the built-in families and prefixes: imported for their registrations
from scaleqbench.methods import (  # noqa: F401
    cnn, disco, dss, fourier, multicolumn, sesn, sevf, ss_cnn, timm_baseline,
)

__all__ = [
    "BUILTIN", "ENTRY_POINT_GROUP", "LEGACY_ENTRY_POINT_GROUP", "HasScaleAxes",
    "HoldsWorkspace", "MethodCard", "MethodEntry", "MethodStyle", "PerSizeClassifier",
    "ScaleModel", "UnknownConfigError", "UnknownMethodError", "create", "family_of", "get_method",
    "list_methods", "register_method", "register_prefix", "reload_plugins", "resolve_methods",
    "style_choices", "style_of", "unregister_method",
]
