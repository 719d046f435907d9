"""The method registry: one entry per method name, made from a builder, its card and its configs.

Style follows timm: a builder function is decorated with :func:`register_method`, and
its :class:`~methods.method_card.MethodCard` and configurations live beside it.
``create(name, ...)`` builds a model, ``list_methods(pattern)`` lists names with shell
wildcards, and a name prefix registered with :func:`register_prefix`
(``timm:<model-name>``) makes entries on demand. Third-party packages add methods
through the entry-point group ``scaleqbench.methods`` (:mod:`methods.plugins`), loaded
on the first look-up.

This module knows no method: the package (``scaleqbench.methods``) imports the
built-in families, whose decorators fill the registry, when it is imported. It knows
no training either: recipes and losses are the harness's
(:mod:`scaleqbench.bench.run.recipes`).

A builder has the signature ``build(in_channels, num_classes, **kwargs)`` and returns
an ``nn.Module`` following the model protocol (:class:`methods.protocol.ScaleModel`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from torch import nn

from scaleqbench.methods.method_card import (
    BUILTIN,
    MethodCard,
    MethodEntry,
    UnknownMethodError,
)
from scaleqbench.methods.plugins import load_plugins, loading_source
from scaleqbench.methods.style import MethodStyle, derived_styles
from scaleqbench.methods.suggest import did_you_mean

__all__ = ["create", "get_method", "list_methods", "register_method", "register_prefix",
           "reload_plugins", "resolve_methods", "style_choices", "style_of", "family_of",
           "unregister_method"]


class _Prefix(NamedTuple):
    factory: Callable[[str], MethodEntry]  # the part after the prefix -> entry
    family: str
    hint: str  # how error messages spell the names, e.g. "timm:<model-name>"


_REGISTRY: dict[str, MethodEntry] = {}
_PREFIXES: dict[str, _Prefix] = {}
_plugins_loaded = False

# ":" is reserved for prefixes (timm:<model>), "[...]" for options, the rest for patterns
_RESERVED = ":*?[], "


def _source_of(builder: Callable[..., Any]) -> str:
    """Who registers ``builder``: the plugin being loaded, scaleqbench itself, or a module."""
    loading = loading_source()
    if loading is not None:
        return loading
    module = getattr(builder, "__module__", "") or ""
    return BUILTIN if module.startswith("scaleqbench.methods.") else module


def register_method(name: str, card: MethodCard, *,
                    configs: Mapping[str, Mapping[str, Any]] | None = None,
                    alias_of: str | None = None):
    """Decorator: register ``builder(in_channels, num_classes, **kwargs)`` under ``name``.

    ``card`` holds the method's provenance, figure style and input policy (its empty
    description is taken from the builder's docstring). ``configs`` maps configuration
    names (``mnist``, ``stl10``, ``quick``) to the builder's keyword arguments; ``mnist``
    is the default of :func:`create` (without ``configs``, an empty ``mnist`` one).
    ``alias_of`` marks a second name for the same model (``dss_vector`` for ``dss``).
    """
    if not name or any(c in name for c in _RESERVED):
        raise ValueError(f"invalid method name {name!r}")
    if not isinstance(card, MethodCard):
        raise TypeError(f"method {name!r}: card must be a MethodCard, got {type(card).__name__}")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"method {name!r} is already registered (by {_REGISTRY[name].source})")
        doc = (builder.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = MethodEntry(
            name=name, builder=builder, card=replace(card, description=card.description or doc),
            configs=dict(configs or {"mnist": {}}), source=_source_of(builder),
            alias_of=alias_of)
        return builder

    return wrap


def unregister_method(name: str) -> None:
    """Forget method ``name`` (a no-op for an unknown one): lets a script or a notebook
    register a changed builder under the same name again."""
    _REGISTRY.pop(name, None)


def register_prefix(prefix: str, factory: Callable[[str], MethodEntry], *, family: str,
                    hint: str) -> None:
    """Names ``<prefix><rest>`` resolve to ``factory(rest)``, made on demand (e.g. ``timm:``).

    ``factory`` raises :class:`UnknownMethodError` for a ``rest`` it cannot build;
    ``family`` is the family of its entries (their derived display style uses it
    without building one); ``hint`` is how error messages spell such names.
    """
    if len(prefix) < 2 or not prefix.endswith(":") or any(c in prefix[:-1] for c in _RESERVED):
        raise ValueError(f"a method prefix is a word followed by ':', got {prefix!r}")
    _PREFIXES[prefix] = _Prefix(factory, family, hint)


def _prefix_of(name: str) -> str | None:
    head, sep, _ = name.partition(":")
    return head + sep if sep and head + sep in _PREFIXES else None


def _valid_names() -> str:
    return ", ".join(sorted(_REGISTRY) + [p.hint for p in _PREFIXES.values()])


def _claim(package: str, source: str) -> None:
    """Methods that modules of ``package`` registered before the plugin loader ran (their
    source is a module name) come from the plugin ``source``."""
    for name, entry in list(_REGISTRY.items()):
        if entry.source == package or entry.source.startswith(package + "."):
            _REGISTRY[name] = replace(entry, source=source)


def _load_plugins() -> None:
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_plugins(_claim)


def reload_plugins() -> None:
    """Re-scan the entry points (after installing a plugin into a running interpreter)."""
    global _plugins_loaded
    _plugins_loaded = False
    _load_plugins()


def list_methods(pattern: str = "*", aliases: bool = True) -> list[str]:
    """Registered method names matching a shell wildcard (``'s*'``), sorted; ``aliases=False``
    leaves out second names of a model (``alias_of``)."""
    _load_plugins()
    return sorted(n for n, e in _REGISTRY.items() if fnmatch.fnmatchcase(n, pattern)
                  and (aliases or e.alias_of is None))


def get_method(name: str) -> MethodEntry:
    """The registry entry of ``name`` (prefixed names such as ``timm:<model>`` included)."""
    _load_plugins()
    prefix = _prefix_of(name)
    if prefix is not None:
        return _PREFIXES[prefix].factory(name[len(prefix):])
    if name not in _REGISTRY:
        raise UnknownMethodError(f"unknown method {name!r}{did_you_mean(name, _REGISTRY)}; "
                                 f"registered: {_valid_names()}")
    return _REGISTRY[name]


def style_choices(name: str) -> Iterator[MethodStyle]:
    """The styles figures may draw method ``name`` in, best first: its declared style, then
    those derived from its name and family (:func:`methods.style.derived_styles`).

    Any name has them, registered or not (a report may hold records of a plugin
    that is not installed here); a prefixed name is not built (no timm import).
    """
    _load_plugins()
    entry = _REGISTRY.get(name)
    if entry is not None:
        if entry.style is not None:
            yield entry.style
        yield from derived_styles(name, entry.family)
        return
    prefix = _prefix_of(name)
    yield from derived_styles(name, _PREFIXES[prefix].family if prefix else None)


def family_of(name: str) -> str | None:
    """The family of method ``name`` (None for a name no registration or prefix knows); a
    prefixed name is not built (no timm import)."""
    _load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name].family
    prefix = _prefix_of(name)
    return _PREFIXES[prefix].family if prefix else None


def style_of(name: str) -> MethodStyle:
    """How figures draw method ``name``: its declared style, else one derived from its name."""
    return next(style_choices(name))


def create(name: str, in_channels: int = 1, num_classes: int = 10, config: str = "mnist",
           **overrides: Any) -> nn.Module:
    """Build method ``name`` in configuration ``config``; keyword overrides win over the config."""
    entry = get_method(name)
    kwargs = entry.config(config)
    kwargs.update(overrides)
    return entry.builder(in_channels=in_channels, num_classes=num_classes, **kwargs)


def _resolve_part(part: str) -> list[str]:
    if part == "all":
        return list_methods(aliases=False)
    if any(c in part for c in "*?[") and _prefix_of(part) is None:
        found = list_methods(part)
        if not found:
            raise UnknownMethodError(
                f"pattern {part!r} matches no method; registered: {_valid_names()}")
        return found
    get_method(part)  # raises for an unknown name
    return [part]


def resolve_methods(spec: str) -> list[str]:
    """Expand ``all``, comma lists, wildcards and ``timm:`` names; order kept, duplicates dropped."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            names.extend(n for n in _resolve_part(part) if n not in names)
    if not names:
        raise UnknownMethodError(f"no methods given in {spec!r}; try 'all' or one of: "
                                 f"{_valid_names()}")
    return names
