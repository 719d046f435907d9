"""A spec resolved: the config values and training recipe a run computes with, from the registry.

A sweep's specs are resolved when they are expanded for a run (``bench run``, ``bench
reproduce``), never by ``bench --help``: resolving imports the registry, its plugins
and torch. :func:`resolve` reads, for the spec's method,

* the config (``methods.get_method(name).config(config_name)``, the config of the
  spec's preset, else the dataset's family) merged with the spec's options;
* the training recipe (:func:`bench.run.recipes.recipe_for`), squeezed into the
  protocol's ``epochs`` when it sets them, with the spec's recipe overrides applied
  (an ``epochs`` override scales the schedule's milestones as ``--epochs`` does; give
  ``milestones`` too to set them),

and returns the spec holding them (:class:`bench.spec.Resolved`); its run id hashes
them. An option or override equal to the value it would have anyway is dropped, so
``cnn[channels=(16, 32, 48)]`` under ``quick`` is ``cnn``: the same run, the same
row. A value is "equal" when its JSON form is (``2`` and ``2.0`` differ, as an
integer and a float may compute differently; a list and a tuple do not).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Mapping
from typing import Any

from scaleqbench import methods
from scaleqbench.bench.run.recipes import TrainRecipe, recipe_for
from scaleqbench.bench.spec import Resolved, RunSpec, preset
from scaleqbench.bench.spec_parsing import frozen, plain

__all__ = ["RECIPE_FIELDS", "apply_recipe", "config_name", "recipe_of", "resolve",
           "todays_resolution"]

#: the fields of a training recipe, each with the kind of its values (``--recipe`` keys)
RECIPE_FIELDS: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(TrainRecipe)}
#: set by the dataset (and, for timm:<name>, by the name), never by an option
_NOT_OPTIONS = ("in_channels", "num_classes", "model_name")


def config_name(spec: RunSpec) -> str:
    """The config a spec's model is built in: its preset's, else its dataset's family."""
    from scaleqbench.datasets import dataset_info
    from scaleqbench.datasets.splits import method_config_of

    return preset(spec.preset).config or method_config_of(dataset_info(spec.dataset).protocol)


def _same(a: Any, b: Any) -> bool:
    """Whether two option values are the same value (see the module docstring)."""
    try:
        return json.dumps(plain(frozen(a)), sort_keys=True) == json.dumps(plain(frozen(b)),
                                                                           sort_keys=True)
    except (TypeError, ValueError):
        return a == b


def _builder_defaults(entry: methods.MethodEntry) -> dict[str, Any]:
    """The builder's named keyword parameters and their defaults: what an option not in the
    config is when it is not given."""
    try:
        params = inspect.signature(entry.builder).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
            and p.name not in _NOT_OPTIONS}


def apply_recipe(recipe: TrainRecipe, overrides: Mapping[str, Any]) -> TrainRecipe:
    """``recipe`` with ``overrides`` set (names of :data:`RECIPE_FIELDS`): ``epochs`` first,
    scaling the milestones and step size (:meth:`TrainRecipe.with_epochs`), then the others
    as given; a whole number given for a float field is that float."""
    if "epochs" in overrides:
        recipe = recipe.with_epochs(int(overrides["epochs"]))
    rest = {k: float(v) if RECIPE_FIELDS[k] == "float" and not isinstance(v, bool) else frozen(v)
            for k, v in overrides.items() if k != "epochs"}
    return dataclasses.replace(recipe, **rest)


def _start_recipe(spec: RunSpec, config: str) -> TrainRecipe:
    recipe = recipe_for(spec.method, config)
    return recipe.with_epochs(spec.epochs) if spec.epochs is not None else recipe


def resolve(spec: RunSpec) -> RunSpec:
    """``spec`` resolved from today's registry (see the module docstring). Raises the
    registry's errors for an unknown method or config, and ``KeyError`` naming a recipe
    override that is no recipe field (the command line checks both first)."""
    entry = methods.get_method(spec.method)
    config = config_name(spec)
    base = entry.config(config)
    defaults = {**_builder_defaults(entry), **base}
    kwargs = {k: v for k, v in spec.method_kwargs
              if k not in defaults or not _same(v, defaults[k])}
    start = _start_recipe(spec, config)
    unknown = [k for k, _ in spec.recipe_overrides if k not in RECIPE_FIELDS]
    if unknown:
        raise KeyError(f"no recipe field {', '.join(unknown)}")
    overrides = {k: v for k, v in spec.recipe_overrides
                 if not _same(getattr(apply_recipe(start, {k: v}), k), getattr(start, k))}
    recipe = apply_recipe(start, overrides)
    return spec.with_resolution(kwargs, overrides,
                                Resolved.of({**base, **kwargs}, dataclasses.asdict(recipe)))


def todays_resolution(spec: RunSpec) -> Resolved | None:
    """What ``spec`` (its options and overrides as given) computes with today; None when
    this installation cannot say (a method or config not registered here)."""
    try:
        return resolve(spec).resolved
    except Exception:  # noqa: BLE001 - a plugin not installed here, a config it lacks
        return None


def recipe_of(resolved: Resolved) -> TrainRecipe:
    """The training recipe a resolved spec holds."""
    return TrainRecipe(**{k: frozen(v) for k, v in resolved.recipe})
