"""Training recipes and losses (bench/run/recipes.py): the published protocols, the defaults,
one table per method that departs from them, aliases, and what a plugin may register."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from scaleqbench import methods
from scaleqbench.bench.run import recipes
from scaleqbench.bench.run.recipes import (
    DEFAULT_RECIPES,
    MNIST_RECIPE,
    TrainRecipe,
    cross_entropy_loss,
    loss_for,
    recipe_for,
    register_recipes,
)
from scaleqbench.methods import MethodCard, UnknownMethodError
from scaleqbench.methods.fourier import scale_consistency_loss

# The published training protocols, written out from their sources (not from the code).
SESN_MNIST = dict(
    # Sosnovik et al., ICLR 2020, Sec. 6.1; github.com/ISosnovik/sesn, experiments_mnist.sh
    # (--optim adam --lr 0.01 --lr_steps 20 40 --batch_size 128 --epochs 60) and the defaults
    # of train_scale_mnist.py (lr_gamma 0.1; its Adam takes no weight decay). The same script
    # trains every MNIST model of the comparison: the CNN, SESN and SESN's DSS models.
    optimizer="adam", lr=0.01, weight_decay=0.0, schedule="multistep", milestones=(20, 40),
    gamma=0.1, epochs=60, batch_size=128)
SESN_STL10 = dict(
    # Sosnovik et al., ICLR 2020, Sec. 6.2; github.com/ISosnovik/sesn, experiments_stl.sh
    # (--optim sgd --nesterov --decay 0.0005 --lr 0.1 --lr_steps 300 400 600 800
    # --lr_gamma 0.2 --batch_size 128 --epochs 1000) and train_stl10.py (momentum 0.9);
    # wrn_16_8_ses_a/b and wrn_16_8_dss are trained alike.
    optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
    schedule="multistep", milestones=(300, 400, 600, 800), gamma=0.2, epochs=1000,
    batch_size=128)
FOURIER_MNIST = dict(
    # Rahman & Yeh, NeurIPS 2023; github.com/ashiq24/Scale_Equivarinat_Fourier_Layer,
    # train_mnist.py (learning_rate 1e-2, weight_decay 3e-2, epochs 60, batch_size 128,
    # StepLR step_size_lr 20, step_gamma_lr 0.1) and models/core.py (AdamW by default).
    optimizer="adamw", lr=0.01, weight_decay=0.03, schedule="step", step_size=20, gamma=0.1,
    epochs=60, batch_size=128)

PUBLISHED = [
    ("cnn", "mnist", SESN_MNIST), ("sesn", "mnist", SESN_MNIST),
    ("sesn_vector", "mnist", SESN_MNIST), ("dss", "mnist", SESN_MNIST),
    ("dss_vector", "mnist", SESN_MNIST), ("dss_scalar", "mnist", SESN_MNIST),
    ("sesn", "stl10", SESN_STL10), ("sesn_vector", "stl10", SESN_STL10),
    ("dss", "stl10", SESN_STL10), ("dss_vector", "stl10", SESN_STL10),
    ("fourier", "mnist", FOURIER_MNIST),
]


@pytest.mark.parametrize("name,config,protocol", PUBLISHED,
                         ids=[f"{n}-{c}" for n, c, _ in PUBLISHED])
def test_recipes_follow_the_published_protocols(name, config, protocol):
    recipe = recipe_for(name, config)
    got = {field: getattr(recipe, field) for field in protocol}
    assert got == protocol


def test_with_epochs_squeezes_the_schedule():
    r = TrainRecipe(milestones=(20, 40), step_size=20, epochs=60)
    squeezed = r.with_epochs(6)
    assert (squeezed.epochs, squeezed.milestones, squeezed.step_size) == (6, (2, 4), 2)
    assert r.with_epochs(60) is r
    assert TrainRecipe(milestones=(1, 2), epochs=60).with_epochs(6).milestones == (1,)



def test_train_recipe_is_frozen():
    with pytest.raises(AttributeError):
        TrainRecipe().lr = 1.0  # type: ignore[misc]


def test_methods_without_a_table_get_the_defaults_and_cross_entropy():
    for name in ("cnn", "sesn", "sevf", "ss_cnn", "sicnn", "timm:resnet18"):
        for config, default in DEFAULT_RECIPES.items():
            assert recipe_for(name, config) is default
            assert loss_for(name, config) is cross_entropy_loss
    # a configuration without a default recipe is trained as MNIST is
    assert recipe_for("cnn", "imagenet") is MNIST_RECIPE
    with pytest.raises(UnknownMethodError, match="did you mean 'sesn'"):
        recipe_for("sesm", "mnist")


def test_departures_are_kept_once_and_aliases_share_them():
    assert loss_for("fourier", "quick") is scale_consistency_loss
    assert recipe_for("fourier", "stl10").no_decay == ("spectral_weight",)
    assert recipe_for("disco", "stl10").batch_size == 64
    assert recipe_for("disco", "mnist") is DEFAULT_RECIPES["mnist"]
    # only what departs from the defaults is written down: no table repeats one
    for name, table in recipes._TRAINING.items():
        for config, recipe in table.recipes.items():
            assert recipe != DEFAULT_RECIPES.get(config), f"{name}[{config}] repeats the default"
    # dss_vector is a second name of dss: trained as dss, whatever dss's table says
    try:
        register_recipes("dss", {"quick": TrainRecipe(lr=0.25)}, loss={"quick": _halved})
        assert recipe_for("dss_vector", "quick").lr == 0.25
        assert loss_for("dss_vector", "quick") is _halved
        assert loss_for("dss_vector", "mnist") is cross_entropy_loss
    finally:
        recipes.unregister_recipes("dss")


def _halved(model, x, y):
    logits = model(x)
    return 0.5 * F.cross_entropy(logits, y), logits


@pytest.fixture
def sb_method():
    """A throw-away method ``sb_trained`` (removed, with its recipes, afterwards)."""
    methods.register_method("sb_trained", MethodCard(family="test"),
                            configs={"mnist": {}, "quick": {}})(
        lambda in_channels=1, num_classes=10: torch.nn.Linear(1, num_classes))
    yield "sb_trained"
    methods.unregister_method("sb_trained")
    recipes.unregister_recipes("sb_trained")


def test_a_loss_per_config_or_one_for_all(sb_method):
    quick = TrainRecipe(lr=0.5, epochs=1)
    register_recipes(sb_method, {"quick": quick}, loss={"quick": _halved})
    assert recipe_for(sb_method, "quick") is quick
    assert recipe_for(sb_method, "mnist") is DEFAULT_RECIPES["mnist"]
    assert loss_for(sb_method, "quick") is _halved
    assert loss_for(sb_method, "mnist") is cross_entropy_loss
    recipes.unregister_recipes(sb_method)
    register_recipes(sb_method, loss=_halved)
    assert loss_for(sb_method, "mnist") is _halved and loss_for(sb_method, "quick") is _halved


def test_the_loss_registered_is_the_loss_trained_with(sb_method):
    register_recipes(sb_method, loss=_halved)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    loss, logits = loss_for(sb_method, "quick")(model, x, y)
    full, _ = cross_entropy_loss(model, x, y)
    assert torch.allclose(loss, 0.5 * full) and torch.equal(logits, model(x))


def test_a_second_table_for_a_method_is_refused_the_same_one_is_not(sb_method):
    table = {"quick": TrainRecipe(lr=0.5)}
    register_recipes(sb_method, table, loss=_halved)
    register_recipes(sb_method, dict(table), loss=_halved)  # a module imported twice
    with pytest.raises(ValueError, match="already has its training recipes"):
        register_recipes(sb_method, {"quick": TrainRecipe(lr=0.1)})
    with pytest.raises(TypeError, match="not a TrainRecipe"):
        register_recipes("sb_other", {"quick": {"lr": 0.1}})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="callable"):
        register_recipes("sb_other", loss={"quick": "cross_entropy"})  # type: ignore[dict-item]
    assert "sb_other" not in recipes._TRAINING


def test_recipes_record_as_plain_data():
    # a run record holds dataclasses.asdict(recipe): plain JSON values, no functions
    for name in ("fourier", "disco", "cnn"):
        for config in ("mnist", "stl10", "quick"):
            d = dataclasses.asdict(recipe_for(name, config))
            assert all(isinstance(v, (str, int, float, bool, tuple)) for v in d.values())
