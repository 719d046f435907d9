"""The method registry: one entry per method, its configurations and its training recipe.

Style follows timm: a builder function is decorated with :func:`register_method`
and the metadata lives beside it. ``create(name, ...)`` builds a model,
``list_methods(pattern)`` lists names with shell wildcards, and a name prefix
registered with :func:`register_prefix` (``timm:<model-name>``) makes entries on
demand. Third-party packages add methods through the entry-point group
``scaleqbench.methods``: each entry point names a module (or a callable) whose
import registers its methods; they are loaded on the first look-up.

This module knows no method: the package (``scaleqbench.methods``) imports the
built-in families, whose decorators fill the registry, when it is imported.

A method's builder has the signature ``build(in_channels, num_classes, **kwargs)``
and returns an ``nn.Module`` following the model protocol (DESIGN.md): ``forward``
takes ``(B, C, H, W)`` at any size in the dataset's range and returns logits
``(B, K)``; ``features(x)`` returns ``{name: (B, C', H', W')}`` after each block.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import logging
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.datasets.scaling import INPUT_POLICIES
from scaleqbench.methods.style import MethodStyle, derived_styles

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "scaleqbench.methods"

#: loss(model, x, y) -> (scalar loss, logits used for the training accuracy)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class UnknownMethodError(KeyError):
    """A method name that is not registered (the message lists the valid names)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class UnknownConfigError(KeyError):
    """A configuration name a method does not define."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class TrainRecipe:
    """How a method is trained: optimiser, schedule, epochs, batch size, weight decay groups.

    ``schedule`` is ``"multistep"`` (``milestones``, ``gamma``), ``"step"``
    (``step_size``, ``gamma``) or ``"constant"``. ``no_decay`` holds substrings
    of parameter names that get no weight decay (e.g. spectral weights).
    """

    optimizer: str = "adam"
    lr: float = 1e-2
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "multistep"
    milestones: tuple[int, ...] = (20, 40)
    step_size: int = 20
    gamma: float = 0.1
    epochs: int = 60
    batch_size: int = 128
    no_decay: tuple[str, ...] = ()

    def with_epochs(self, epochs: int) -> TrainRecipe:
        """The same recipe squeezed into ``epochs`` (milestones / step size scale with it)."""
        if epochs == self.epochs:
            return self
        ratio = epochs / self.epochs
        milestones = tuple(sorted({max(1, round(m * ratio)) for m in self.milestones}))
        return replace(self, epochs=epochs, milestones=milestones,
                       step_size=max(1, round(self.step_size * ratio)))


#: The protocol's defaults (the SESN / Fourier MNIST protocol).
MNIST_RECIPE = TrainRecipe()
STL10_RECIPE = TrainRecipe(optimizer="sgd", lr=0.1, weight_decay=5e-4, nesterov=True,
                           milestones=(300, 400, 600, 800), gamma=0.2, epochs=1000)
QUICK_RECIPE = TrainRecipe(lr=5e-3, milestones=(6,), epochs=8, batch_size=64)
DEFAULT_RECIPES: Mapping[str, TrainRecipe] = {
    "mnist": MNIST_RECIPE, "stl10": STL10_RECIPE, "quick": QUICK_RECIPE,
}


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The protocol's default loss: cross-entropy on the model's logits."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@dataclass(frozen=True)
class MethodEntry:
    """Everything the registry knows about one method."""

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str = ""
    year: int | None = None
    description: str = ""
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    recipes: Mapping[str, TrainRecipe] = field(default_factory=dict)
    loss: LossFn | None = None
    source: str = "builtin"
    alias_of: str | None = None  # the same model as another name: left out of ``all``
    #: the authors' reference implementation, "owner/repo@commit:path" (what fixtures were made from)
    reference: str = ""
    style: MethodStyle | None = None  # how figures draw it; None: derived from name and family
    #: how its paper fed it images smaller than a multi-resolution protocol's canvas: the
    #: ``published`` input policy (``pad``: the baselines of Rahman & Yeh 2023 saw their inputs
    #: zero-padded onto the canvas; a method built for any size declares ``native``)
    input: str = "pad"

    def config(self, name: str) -> dict[str, Any]:
        if name not in self.configs:
            raise UnknownConfigError(
                f"method {self.name!r} has no config {name!r}; it defines: {', '.join(self.configs)}")
        return dict(self.configs[name])

    def recipe(self, config: str) -> TrainRecipe:
        """The training recipe for ``config`` (the method's own, else the protocol's default)."""
        if config in self.recipes:
            return self.recipes[config]
        return DEFAULT_RECIPES.get(config, MNIST_RECIPE)

    def loss_fn(self) -> LossFn:
        return self.loss or cross_entropy_loss


class _Prefix(NamedTuple):
    factory: Callable[[str], MethodEntry]  # the part after the prefix -> entry
    family: str
    hint: str  # how error messages spell the names, e.g. "timm:<model-name>"


_REGISTRY: dict[str, MethodEntry] = {}
_PREFIXES: dict[str, _Prefix] = {}
_plugins_loaded = False


def register_method(name: str, *, family: str, paper: str = "", year: int | None = None,
                    configs: Mapping[str, Mapping[str, Any]] | None = None,
                    recipes: Mapping[str, TrainRecipe] | None = None,
                    loss: LossFn | None = None, description: str = "",
                    alias_of: str | None = None, style: MethodStyle | None = None,
                    reference: str = "", input: str = "pad"):
    """Decorator: register ``builder(in_channels, num_classes, **kwargs)`` under ``name``.

    ``configs`` maps configuration names (``mnist``, ``stl10``, ``quick``) to the
    builder's keyword arguments; ``mnist`` is the default of :func:`create`.
    ``alias_of`` marks a second name for the same model (e.g. ``dss_vector`` for
    ``dss``): it resolves as usual but ``--methods all`` runs the model once.
    ``reference`` names the authors' public implementation the method is checked against,
    as ``"owner/repo@commit:path"``.
    ``style`` is how figures draw the method (see :mod:`methods.style`); without
    one it is derived from the name and family.
    ``input`` is how the method's paper fed it an image smaller than the canvas of a
    multi-resolution protocol (``native``, ``pad`` or ``upsample``); the ``published``
    input policy of ``bench run`` gives each method its own.
    """
    if input not in INPUT_POLICIES:
        raise ValueError(f"method {name!r}: input must be one of {', '.join(INPUT_POLICIES)}, "
                         f"got {input!r}")
    # ":" is reserved for prefixes (timm:<model>), "[...]" for options, the rest for patterns
    if not name or any(c in name for c in ":*?[], "):
        raise ValueError(f"invalid method name {name!r}")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"method {name!r} is already registered (by {_REGISTRY[name].source})")
        cfgs = dict(configs or {"mnist": {}})
        module = getattr(builder, "__module__", "")
        source = "builtin" if module.startswith("scaleqbench.methods.") else module
        _REGISTRY[name] = MethodEntry(
            name=name, builder=builder, family=family, paper=paper, year=year,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            configs=cfgs, recipes=dict(recipes or {}), loss=loss, source=source,
            alias_of=alias_of, style=style, reference=reference, input=input)
        return builder

    return wrap


def register_prefix(prefix: str, factory: Callable[[str], MethodEntry], *, family: str,
                    hint: str) -> None:
    """Names ``<prefix><rest>`` resolve to ``factory(rest)``, made on demand (e.g. ``timm:``).

    ``factory`` raises :class:`UnknownMethodError` for a ``rest`` it cannot build;
    ``family`` is the family of its entries (their derived display style uses it
    without building one); ``hint`` is how error messages spell such names.
    """
    if len(prefix) < 2 or not prefix.endswith(":") or any(c in prefix[:-1] for c in ":*?[], "):
        raise ValueError(f"a method prefix is a word followed by ':', got {prefix!r}")
    _PREFIXES[prefix] = _Prefix(factory, family, hint)


def _prefix_of(name: str) -> str | None:
    head, sep, _ = name.partition(":")
    return head + sep if sep and head + sep in _PREFIXES else None


def _valid_names() -> str:
    return ", ".join(sorted(_REGISTRY) + [p.hint for p in _PREFIXES.values()])


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, types.ModuleType):
                obj()
        except Exception as exc:  # a broken plugin must not take the registry down
            log.warning("could not load scaleqbench plugin %r (%s): %s", ep.name, ep.value, exc)


def reload_plugins() -> None:
    """Re-scan the entry points (after installing a plugin into a running interpreter)."""
    global _plugins_loaded
    _plugins_loaded = False
    importlib.invalidate_caches()
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
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownMethodError(f"unknown method {name!r}{hint}; registered: {_valid_names()}")
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


def resolve_methods(spec: str) -> list[str]:
    """Expand ``all``, comma lists, wildcards and ``timm:`` names; order kept, duplicates dropped."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part == "all":
            found = list_methods(aliases=False)
        elif _prefix_of(part) is not None:
            get_method(part)
            found = [part]
        elif any(c in part for c in "*?["):
            found = list_methods(part)
            if not found:
                raise UnknownMethodError(
                    f"pattern {part!r} matches no method; registered: {_valid_names()}")
        else:
            get_method(part)
            found = [part]
        names.extend(n for n in found if n not in names)
    if not names:
        raise UnknownMethodError(f"no methods given in {spec!r}; try 'all' or one of: "
                                 f"{_valid_names()}")
    return names
