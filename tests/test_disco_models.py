"""DISCO models: configurations, variable sizes, features with their declared scale axes, metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scaleqbench import methods
from scaleqbench.bench.run.recipes import recipe_for
from scaleqbench.methods.disco import DiscoMnist, DiscoWideResNet, ScaleAxis

FIXTURES = Path(__file__).parent / "fixtures" / "disco"


@pytest.fixture(scope="module")
def their_proxies():
    # the authors' bases: the paper-size models without a paper-size fit
    with np.load(FIXTURES / "reference.npz") as z:
        return torch.from_numpy(z["mnist_proxy"]), torch.from_numpy(z["stl_proxy"])


def _check_axes(model: torch.nn.Module, feats: dict[str, torch.Tensor], channels: dict[str, int]):
    axes = model.scale_axes()
    assert set(axes) == set(channels)
    for name, axis in axes.items():
        assert isinstance(axis, ScaleAxis) and axis.scales == model.scales
        assert feats[name].shape[1] == channels[name] * axis.size  # folded c * S + s


def test_quick_model_features_declare_their_scale_axes():
    torch.manual_seed(0)
    model = methods.create("disco", config="quick").eval()
    assert isinstance(model, DiscoMnist) and model.scales == (1.0, 1.41, 2.0)
    with torch.no_grad():
        for size in (8, 15, 28):
            x = torch.rand(2, 1, size, size)
            feats = model.features(x)
            assert list(feats) == ["block1", "block2", "block3", "proj"]
            _check_axes(model, feats, {"block1": 12, "block2": 24, "block3": 36})
            assert feats["proj"].shape[1] == 36  # pooled over scales: no axis
            assert model(x).shape == (2, 10)


def test_folded_features_are_channel_major(their_proxies):
    model = methods.create("disco", config="quick").eval()
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        lifted = model.post1(model.conv1(x))  # (B, C, S, H, W)
        folded = model.features(x)["block1"]
    c, s = 5, 2
    assert torch.equal(folded[:, c * 3 + s], lifted[:, c, s])


def test_paper_mnist_model_with_their_basis(their_proxies):
    model = methods.create("disco", config="mnist", proxy=their_proxies[0]).eval()
    assert model.scales == (1.0, 1.26, 1.59, 2.0)
    assert model.conv1.kernel.supports == [7, 15, 15, 13]
    with torch.no_grad():
        for size in (8, 28):
            feats = model.features(torch.rand(2, 1, size, size))
            # the 2x upsampling is undone by the first pooling: block 1 has the input's size
            assert feats["block1"].shape[-1] == size
            _check_axes(model, feats, {"block1": 32, "block2": 63, "block3": 95})
    plus = methods.create("disco", config="mnist", plus=True, proxy=their_proxies[0])
    assert not torch.equal(plus.conv1.kernel.basis, model.conv1.kernel.basis)  # mult 1.9


def test_stl10_wrn_with_their_basis(their_proxies):
    torch.manual_seed(0)
    # a narrow, shallow WRN of the published kind (same blocks, fewer channels)
    model = methods.create("disco", in_channels=3, config="stl10", proxy=their_proxies[1],
                           depth=10, widen=1).eval()
    assert isinstance(model, DiscoWideResNet)
    with torch.no_grad():
        for size in (49, 96):
            x = torch.rand(2, 3, size, size)
            feats = model.features(x)
            assert feats["group1"].shape[-1] == size
            assert feats["group3"].shape[-1] == -(-(-(-size // 2)) // 2)  # two ceil halvings
            _check_axes(model, feats, {"stem": 16, "group1": 16, "group2": 32, "group3": 64})
            assert model(x).shape == (2, 10)
    # groups 2 and 3 start by re-lifting after a max over scales, as published
    assert type(model.groups[1][0].conv1[1]).__name__ == "DiscoLift"
    assert type(model.groups[0][0].conv1[0]).__name__ == "DiscoConvHH"


def test_wrn_init_follows_the_authors():
    torch.manual_seed(0)
    model = methods.create("disco", in_channels=3, config="stl10", depth=10, widen=1,
                           fit=dict(num_images=2, image_size=40))
    w = model.groups[2][0].conv2.weight  # (64, 64, 1, 9): std sqrt(2 / (64 * 9))
    assert w.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    assert torch.all(model.fc.bias == 0)


def test_registry_metadata_and_recipes():
    entry = methods.get_method("disco")
    assert entry.reference.startswith(
        "ISosnovik/disco@f832fa0636caae59d4fc693e48582a06006e189d:")
    assert entry.year == 2021 and "Sosnovik" in entry.paper
    assert set(entry.configs) == {"mnist", "stl10", "quick"}
    mnist, stl = recipe_for("disco", "mnist"), recipe_for("disco", "stl10")
    assert (mnist.optimizer, mnist.lr, mnist.milestones, mnist.epochs) == ("adam", 1e-2, (20, 40), 60)
    assert (stl.optimizer, stl.lr, stl.weight_decay, stl.nesterov, stl.batch_size) == (
        "sgd", 0.05, 1e-3, True, 64)


def test_bad_options_are_rejected(their_proxies):
    with pytest.raises(ValueError):
        methods.create("disco", config="quick", arch="resnet")
    with pytest.raises(ValueError):
        methods.create("disco", config="quick", proxy=their_proxies[0])  # wrong shape
    with pytest.raises(ValueError):
        methods.create("disco", config="stl10", plus=True, proxy=their_proxies[1])
