"""``build_optimizer`` (bench/run/train.py): parameter groups, optimiser kinds, learning-rate schedules.

The training loop steps the scheduler once at the end of every epoch, so the
rate during epoch ``e`` (0-based) is the one after ``e`` scheduler steps.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scaleqbench import methods
from scaleqbench.bench.errors import BenchError
from scaleqbench.bench.run.optimizer import build_optimizer
from scaleqbench.bench.run.recipes import TrainRecipe, recipe_for


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.spectral_weight = nn.Parameter(torch.ones(4))
        self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)


def decay_of(opt: torch.optim.Optimizer) -> dict[int, float]:
    """id(parameter) -> the weight decay of its group (each parameter in exactly one group)."""
    out: dict[int, float] = {}
    for group in opt.param_groups:
        for p in group["params"]:
            assert id(p) not in out, "a parameter in two groups"
            out[id(p)] = group["weight_decay"]
    return out


def lr_by_epoch(recipe: TrainRecipe, epochs: int) -> list[float]:
    opt, sched = build_optimizer(nn.Linear(2, 2), recipe)
    rates = []
    for _ in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: changes nothing, keeps the scheduler's order check quiet
        sched.step()
    return rates


def test_no_decay_names_get_zero_weight_decay_and_frozen_ones_no_group():
    model = Toy()
    opt, _ = build_optimizer(model, TrainRecipe(optimizer="adamw", weight_decay=0.03,
                                                no_decay=("spectral_weight",)))
    decay = decay_of(opt)
    assert decay[id(model.spectral_weight)] == 0.0
    assert decay[id(model.conv.weight)] == decay[id(model.conv.bias)] == 0.03
    assert id(model.frozen) not in decay


def test_without_no_decay_names_every_parameter_decays():
    model = Toy()
    opt, _ = build_optimizer(model, TrainRecipe(optimizer="sgd", weight_decay=5e-4))
    assert set(decay_of(opt).values()) == {5e-4}


def test_fourier_spectral_weights_are_exempt_from_weight_decay():
    model = methods.create("fourier", config="quick")
    recipe = recipe_for("fourier", "mnist")
    decay = decay_of(build_optimizer(model, recipe)[0])
    params = dict(model.named_parameters())
    spectral = [n for n in params if "spectral_weight" in n]
    assert spectral and len(spectral) < len(params)
    for name, p in params.items():
        assert decay[id(p)] == (0.0 if name in spectral else recipe.weight_decay), name


@pytest.mark.parametrize("kind,cls", [("adam", torch.optim.Adam), ("AdamW", torch.optim.AdamW),
                                      ("sgd", torch.optim.SGD)])
def test_optimizer_kinds(kind, cls):
    recipe = TrainRecipe(optimizer=kind, lr=0.05, momentum=0.8, nesterov=True)
    opt, _ = build_optimizer(nn.Linear(2, 2), recipe)
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.05
    if cls is torch.optim.SGD:
        assert opt.param_groups[0]["momentum"] == 0.8 and opt.param_groups[0]["nesterov"]


def test_multistep_schedule():
    rates = lr_by_epoch(TrainRecipe(lr=0.01, schedule="multistep", milestones=(20, 40),
                                    gamma=0.1), 60)
    for epoch, want in [(0, 0.01), (19, 0.01), (20, 1e-3), (39, 1e-3), (40, 1e-4), (59, 1e-4)]:
        assert rates[epoch] == pytest.approx(want), epoch


def test_step_schedule():
    rates = lr_by_epoch(TrainRecipe(lr=5e-3, schedule="step", step_size=5, gamma=0.2), 13)
    for epoch, want in [(0, 5e-3), (4, 5e-3), (5, 1e-3), (9, 1e-3), (10, 2e-4), (12, 2e-4)]:
        assert rates[epoch] == pytest.approx(want), epoch


def test_constant_schedule():
    rates = lr_by_epoch(TrainRecipe(lr=0.3, schedule="constant", milestones=(1, 2)), 5)
    assert rates == pytest.approx([0.3] * 5)


# a one-line user error: ValueError today, a bench.errors type if the harness adopts one
@pytest.mark.parametrize("field,value,message", [
    ("optimizer", "rmsprop", "unknown optimizer 'rmsprop'"),
    ("schedule", "cosine", "unknown schedule 'cosine'"),
])
def test_unknown_optimizer_or_schedule_is_refused(field, value, message):
    recipe = TrainRecipe(**{field: value})
    with pytest.raises((ValueError, BenchError), match=message):
        build_optimizer(nn.Linear(2, 2), recipe)
