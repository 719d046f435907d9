"""Training recipes and losses: how each method is trained, per configuration, in one place.

A recipe is a training concern, so it lives here, in the harness, and not beside the
model: ``scaleqbench.methods`` holds models only (a builder, its card, its
configurations). Every method is trained with the protocol's default recipe of its
configuration (:data:`DEFAULT_RECIPES`) and the cross-entropy loss unless this module
holds a departure for it: the built-in ones are registered at the bottom of this file,
and a plugin registers its own with :func:`register_recipes` when it is imported (a
plugin package may import both ``scaleqbench.methods`` and ``scaleqbench.bench``; see
docs/adding-a-method.md). A second name of a model (``alias_of``) is trained as the
model it names.

:func:`recipe_for` and :func:`loss_for` are what training (:mod:`.train`) and ``bench
perf`` (:mod:`.perf`) ask; a recipe is recorded with its run (``RunRecord.recipe``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench import methods
from scaleqbench.methods.fourier import NO_DECAY, scale_consistency_loss

__all__ = ["DEFAULT_RECIPES", "LossFn", "MNIST_RECIPE", "QUICK_RECIPE", "STL10_RECIPE",
           "TrainRecipe", "cross_entropy_loss", "loss_for", "recipe_for", "register_recipes",
           "unregister_recipes"]

#: loss(model, x, y) -> (scalar loss, logits used for the training accuracy)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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


# The protocol's defaults: the recipes of the SESN benchmark (github.com/ISosnovik/sesn),
# with which its authors trained every model of their comparison, and the published
# recipes of SESN, DSS, SEVF, SS-CNN, SiCNN and SI-ConvNet there:
# MNIST (experiments_mnist.sh, train_scale_mnist.py): Adam 1e-2, x0.1 at 20/40, 60 epochs,
# batch 128, no weight decay.
MNIST_RECIPE = TrainRecipe()
# STL-10 (experiments_stl.sh, train_stl10.py): SGD Nesterov, momentum 0.9, lr 0.1, weight
# decay 5e-4, x0.2 at 300/400/600/800, 1000 epochs, batch 128.
STL10_RECIPE = TrainRecipe(optimizer="sgd", lr=0.1, weight_decay=5e-4, nesterov=True,
                           milestones=(300, 400, 600, 800), gamma=0.2, epochs=1000)
# quick: the harness's CPU budget (3 epochs, every method; one decay before the last)
QUICK_RECIPE = TrainRecipe(lr=5e-3, milestones=(2,), epochs=3, batch_size=64)
DEFAULT_RECIPES: Mapping[str, TrainRecipe] = {
    "mnist": MNIST_RECIPE, "stl10": STL10_RECIPE, "quick": QUICK_RECIPE,
}


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The protocol's default loss: cross-entropy on the model's logits."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@dataclass(frozen=True)
class _Training:
    """One method's departures from the defaults: recipes and losses by config, a loss for all."""

    recipes: Mapping[str, TrainRecipe] = field(default_factory=dict)
    losses: Mapping[str, LossFn] = field(default_factory=dict)
    loss: LossFn | None = None


_TRAINING: dict[str, _Training] = {}


def register_recipes(method: str, recipes: Mapping[str, TrainRecipe] | None = None, *,
                     loss: LossFn | Mapping[str, LossFn] | None = None) -> None:
    """Train ``method`` with ``recipes`` (configuration name -> recipe) and ``loss``.

    ``loss`` is one function ``loss(model, x, y) -> (loss, logits)`` for every
    configuration, or a mapping from configuration names to such functions. A
    configuration given neither keeps the default recipe and the cross-entropy loss.
    Registering the same table again (a module imported twice) changes nothing; a
    different one for a method that has one is refused.
    """
    recipes = dict(recipes or {})
    for config, recipe in recipes.items():
        if not isinstance(recipe, TrainRecipe):
            raise TypeError(f"method {method!r}: the recipe of {config!r} is a "
                            f"{type(recipe).__name__}, not a TrainRecipe")
    losses = dict(loss) if isinstance(loss, Mapping) else {}
    for fn in [*losses.values(), *([loss] if callable(loss) else [])]:
        if not callable(fn):
            raise TypeError(f"method {method!r}: a loss must be callable, got {fn!r}")
    table = _Training(recipes, losses, loss if callable(loss) else None)
    if method in _TRAINING and _TRAINING[method] != table:
        raise ValueError(f"method {method!r} already has its training recipes registered")
    _TRAINING[method] = table


def unregister_recipes(method: str) -> None:
    """Forget what :func:`register_recipes` holds for ``method`` (a no-op if nothing)."""
    _TRAINING.pop(method, None)


def _tables(method: str) -> list[_Training]:
    """The tables that train ``method``: its own, then those of the model it is a name of.

    Looking the method up loads the plugins, whose imports register their recipes.
    """
    entry = methods.get_method(method)
    names = [entry.name] + ([entry.alias_of] if entry.alias_of else [])
    return [_TRAINING[n] for n in names if n in _TRAINING]


def recipe_for(method: str, config: str) -> TrainRecipe:
    """How ``method`` is trained in configuration ``config``: its own recipe, else the
    protocol's default for ``config`` (the MNIST one for a configuration without one)."""
    for table in _tables(method):
        if config in table.recipes:
            return table.recipes[config]
    return DEFAULT_RECIPES.get(config, MNIST_RECIPE)


def loss_for(method: str, config: str) -> LossFn:
    """The loss ``method`` is trained with in ``config``: its own, else the cross-entropy."""
    for table in _tables(method):
        if config in table.losses:
            return table.losses[config]
        if table.loss is not None:
            return table.loss
    return cross_entropy_loss


# ---- the built-in methods' departures from the defaults -----------------------------------

# DISCO on STL-10 (ISosnovik/disco, train_stl10.py defaults; exp_stl.sh adds --nesterov):
# SGD 0.05, momentum 0.9, weight decay 1e-3, x0.2 at 300/400/600/800, 1000 epochs, batch 64.
# Its Scale-MNIST recipe (train_scale_mnist.py) is the default one.
register_recipes("disco", {
    "stl10": TrainRecipe(optimizer="sgd", lr=0.05, weight_decay=1e-3, momentum=0.9,
                         nesterov=True, milestones=(300, 400, 600, 800), gamma=0.2,
                         epochs=1000, batch_size=64),
})

# Fourier (Rahman & Yeh 2023): AdamW with the spectral weights out of weight decay (the
# paper's parameter groups) and the scale-consistency loss at every configuration.
register_recipes("fourier", {
    # the paper's MNIST protocol (train_mnist.py of the authors' code)
    "mnist": TrainRecipe(optimizer="adamw", lr=1e-2, weight_decay=3e-2, schedule="step",
                         step_size=20, gamma=0.1, epochs=60, batch_size=128, no_decay=NO_DECAY),
    # ours (the paper does not state one): the MNIST recipe at a lower rate, longer
    "stl10": TrainRecipe(optimizer="adamw", lr=1e-3, weight_decay=3e-2, schedule="step",
                         step_size=30, gamma=0.1, epochs=90, batch_size=64, no_decay=NO_DECAY),
    "quick": TrainRecipe(optimizer="adamw", lr=5e-3, weight_decay=1e-2, schedule="step",
                         step_size=2, gamma=0.2, epochs=3, batch_size=64, no_decay=NO_DECAY),
}, loss=scale_consistency_loss)
