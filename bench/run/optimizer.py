"""The optimiser and learning-rate schedule a :class:`~bench.run.recipes.TrainRecipe` names."""

from __future__ import annotations

import torch
from torch import nn

from scaleqbench.bench.run import recipes

__all__ = ["build_optimizer"]


def build_optimizer(model: nn.Module, recipe: recipes.TrainRecipe):
    """Optimiser and LR scheduler from a recipe (``no_decay`` names get no weight decay)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if any(s in name for s in recipe.no_decay) else decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    kind = recipe.optimizer.lower()
    if kind == "adam":
        opt = torch.optim.Adam(groups, lr=recipe.lr)
    elif kind == "adamw":
        opt = torch.optim.AdamW(groups, lr=recipe.lr)
    elif kind == "sgd":
        opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum,
                              nesterov=recipe.nesterov)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r} (adam, adamw, sgd)")
    if recipe.schedule == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(recipe.milestones), recipe.gamma)
    elif recipe.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, recipe.step_size, recipe.gamma)
    elif recipe.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    else:
        raise ValueError(f"unknown schedule {recipe.schedule!r} (multistep, step, constant)")
    return opt, sched
