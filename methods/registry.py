"""The method registry: one entry per method, its configurations and its training recipe.

Style follows timm: a builder function is decorated with :func:`register_method`
and the metadata lives beside it. ``create(name, ...)`` builds a model,
``list_methods(pattern)`` lists names with shell wildcards, and
``timm:<model-name>`` builds any timm model as a baseline. Third-party packages
add methods through the entry-point group ``scalebench.methods``: each entry
point names a module (or a callable) whose import registers its methods.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "scalebench.methods"
TIMM_PREFIX = "timm:"

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


_REGISTRY: dict[str, MethodEntry] = {}
_plugins_loaded = False


def register_method(name: str, *, family: str, paper: str = "", year: int | None = None,
                    configs: Mapping[str, Mapping[str, Any]] | None = None,
                    recipes: Mapping[str, TrainRecipe] | None = None,
                    loss: LossFn | None = None, description: str = "",
                    alias_of: str | None = None, reference: str = ""):
    """Decorator: register ``builder(in_channels, num_classes, **kwargs)`` under ``name``.

    ``configs`` maps configuration names (``mnist``, ``stl10``, ``quick``) to the
    builder's keyword arguments; ``mnist`` is the default of :func:`create`.
    ``alias_of`` marks a second name for the same model (e.g. ``dss_vector`` for
    ``dss``): it resolves as usual but ``--methods all`` runs the model once.
    ``reference`` names the authors' public implementation the method is checked against,
    as ``"owner/repo@commit:path"``.
    """
    if not name or TIMM_PREFIX in name or any(c in name for c in "*?[], "):
        raise ValueError(f"invalid method name {name!r}")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f"method {name!r} is already registered (by {_REGISTRY[name].source})")
        cfgs = dict(configs or {"mnist": {}})
        module = getattr(builder, "__module__", "")
        source = "builtin" if module.startswith("scalebench.methods.") else module
        _REGISTRY[name] = MethodEntry(
            name=name, builder=builder, family=family, paper=paper, year=year,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            configs=cfgs, recipes=dict(recipes or {}), loss=loss, source=source,
            alias_of=alias_of, reference=reference)
        return builder

    return wrap


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type(importlib)):
                obj()
        except Exception as exc:  # a broken plugin must not take the registry down
            log.warning("could not load scalebench plugin %r (%s): %s", ep.name, ep.value, exc)


def reload_plugins() -> None:
    """Re-scan the entry points (after installing a plugin into a running interpreter)."""
    global _plugins_loaded
    _plugins_loaded = False
    importlib.invalidate_caches()
    _load_plugins()


def _ensure_loaded() -> None:
    importlib.import_module("scalebench.methods.builtin")
    _load_plugins()


def list_methods(pattern: str = "*", aliases: bool = True) -> list[str]:
    """Registered method names matching a shell wildcard (``'s*'``), sorted; ``aliases=False``
    leaves out second names of a model (``alias_of``)."""
    _ensure_loaded()
    return sorted(n for n, e in _REGISTRY.items() if fnmatch.fnmatchcase(n, pattern)
                  and (aliases or e.alias_of is None))


def get_method(name: str) -> MethodEntry:
    """The registry entry of ``name`` (``timm:<model>`` included)."""
    _ensure_loaded()
    if name.startswith(TIMM_PREFIX):
        from scalebench.methods.timm_baseline import timm_entry
        return timm_entry(name[len(TIMM_PREFIX):])
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownMethodError(
            f"unknown method {name!r}{hint}; registered: {', '.join(sorted(_REGISTRY))}, "
            f"or timm:<model-name>")
    return _REGISTRY[name]


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
        elif part.startswith(TIMM_PREFIX):
            get_method(part)
            found = [part]
        elif any(c in part for c in "*?["):
            found = list_methods(part)
            if not found:
                raise UnknownMethodError(
                    f"pattern {part!r} matches no method; registered: {', '.join(list_methods())}")
        else:
            get_method(part)
            found = [part]
        names.extend(n for n in found if n not in names)
    if not names:
        raise UnknownMethodError(f"no methods given in {spec!r}; try 'all' or one of: "
                                 f"{', '.join(list_methods())}")
    return names
