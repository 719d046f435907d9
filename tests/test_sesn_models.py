"""SESN models: registry entries, parameter counts, the model protocol, recipes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scalebench import methods
from scalebench.methods.sesn.models import MNIST_PUBLISHED, SESNMnist, SESNWideResNet

CNN_MNIST_PARAMS = 421_845  # methods/cnn.py, mnist config


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registered_names_and_configs():
    assert {"sesn", "sesn_vector"} <= set(methods.list_methods("sesn*"))
    for name in ("sesn", "sesn_vector"):
        entry = methods.get_method(name)
        assert {"mnist", "stl10", "quick"} <= set(entry.configs)
        assert entry.family == "scale-equivariant"


@pytest.mark.parametrize("variant,plus", list(MNIST_PUBLISHED))
def test_mnist_param_counts_match_the_cnn(variant, plus):
    cnn = n_params(methods.create("cnn"))
    assert cnn == CNN_MNIST_PARAMS
    m = methods.create("sesn", variant=variant, plus=plus)
    hp = MNIST_PUBLISHED[(variant, plus)]
    conv = m.blocks[0].conv.kernel
    assert conv.scales == hp["scales"] and conv.kernel_size == hp["kernel_size"]
    assert conv.num_funcs == 49 and conv.basis_type == "B"
    # coefficients C' x C x 49 + one bias per channel: exactly the 7x7 cnn's count
    assert abs(n_params(m) - cnn) <= 0.01 * cnn
    assert n_params(m) == cnn


def test_published_scales_are_geometric_with_factor_3():
    for (variant, plus), hp in MNIST_PUBLISHED.items():
        s = hp["scales"]
        q = 3 ** (1 / (len(s) - 1))
        assert s == tuple(round(s[0] * q ** i, 2) for i in range(len(s)))


def test_quick_param_count_matches_a_cnn_of_the_same_widths():
    quick = methods.get_method("sesn").config("quick")
    assert n_params(methods.create("sesn", config="quick")) == n_params(
        methods.create("cnn", config="quick", channels=quick["channels"]))


def wrn_16_8_plain_params(in_ch: int = 3, classes: int = 10, k: int = 3) -> int:
    """Parameter count of a plain pre-activation WRN-16-8 with k x k convs."""
    w = [16, 128, 256, 512]
    total = in_ch * w[0] * k * k
    for g in range(3):
        c_in, c_out = w[g], w[g + 1]
        for i in range(2):
            ci = c_in if i == 0 else c_out
            total += 2 * ci + ci * c_out * k * k + 2 * c_out + c_out * c_out * k * k
            if ci != c_out or (i == 0 and g > 0):
                total += ci * c_out  # 1x1 shortcut
    return total + 2 * w[3] + w[3] * classes + classes


@pytest.mark.parametrize("name,variant", [("sesn", "B"), ("sesn_vector", "A")])
def test_stl10_wrn_param_count(name, variant):
    m = methods.create(name, in_channels=3, config="stl10")
    assert isinstance(m, SESNWideResNet)
    # effective size 3, basis A: the parameters of the plain 3x3 WRN-16-8 (~11.0M)
    assert n_params(m) == wrn_16_8_plain_params()
    assert m.stem.kernel.kernel_size == 7 and m.stem.kernel.num_funcs == 9
    assert m.stem.kernel.scales == pytest.approx([0.9, 0.9 * 1.41, 0.9 * 1.41 ** 2])
    relifted = [isinstance(g[0].conv1, torch.nn.Sequential) for g in m.groups]
    assert relifted == ([False, True, True] if variant == "B" else [False, False, False])


def test_recipes():
    entry = methods.get_method("sesn")
    r = entry.recipe("mnist")
    assert (r.optimizer, r.lr, r.milestones, r.gamma, r.epochs, r.batch_size) == (
        "adam", 1e-2, (20, 40), 0.1, 60, 128)
    r = entry.recipe("stl10")
    assert (r.optimizer, r.lr, r.momentum, r.nesterov, r.weight_decay, r.batch_size) == (
        "sgd", 0.1, 0.9, True, 5e-4, 128)
    assert (r.epochs, r.milestones, r.gamma) == (1000, (300, 400, 600, 800), 0.2)


@pytest.mark.parametrize("name", ["sesn", "sesn_vector"])
def test_quick_protocol_every_size(name):
    torch.manual_seed(0)
    m = methods.create(name, config="quick").eval()
    n_s = len(m.blocks[0].conv.kernel.scales)
    with torch.no_grad():
        for size in range(8, 29):
            x = torch.randn(2, 1, size, size)
            out = m(x)
            assert out.shape == (2, 10) and torch.isfinite(out).all()
            feats = m.features(x)
            assert list(feats) == ["block1", "block2", "block3"]
            assert all(f.dim() == 4 for f in feats.values())
            c1, _, c3 = methods.get_method(name).config("quick")["channels"]
            assert feats["block1"].shape[:2] == (2, c1 * (n_s if name == "sesn_vector" else 1))
            assert feats["block3"].shape[1] == c3


@pytest.mark.parametrize("name", ["sesn", "sesn_vector"])
def test_one_step_lowers_the_loss(name):
    torch.manual_seed(0)
    m = methods.create(name, config="quick", dropout=0.0).train()
    x, y = torch.randn(16, 1, 20, 20), torch.randint(0, 10, (16,))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    loss0 = F.cross_entropy(m(x), y)
    opt.zero_grad()
    loss0.backward()
    assert all(p.grad is not None for p in m.parameters())
    opt.step()
    assert F.cross_entropy(m(x), y).item() < loss0.item()


def test_mnist_configs_accept_extreme_sizes():
    for variant in ("scalar", "vector"):
        m = methods.create("sesn", variant=variant).eval()
        with torch.no_grad():
            for size in (8, 28):
                assert m(torch.randn(2, 1, size, size)).shape == (2, 10)


def test_small_wrn_accepts_stl_sizes():
    torch.manual_seed(0)
    m = methods.create("sesn", in_channels=3, config="stl10", widen=1).eval()
    with torch.no_grad():
        for size in (49, 96, 97):
            x = torch.randn(1, 3, size, size)
            assert m(x).shape == (1, 10)
            feats = m.features(x)
            assert all(f.dim() == 4 for f in feats.values())
            assert feats["proj"].shape[1] == 64


@pytest.mark.slow
def test_full_wrn_forward_at_96():
    m = methods.create("sesn", in_channels=3, config="stl10").eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 96, 96)).shape == (1, 10)


def test_keyword_options():
    m = methods.create("sesn", config="mnist", variant="vector", scale_depth=2)
    assert isinstance(m, SESNMnist) and m.variant == "vector"
    assert m.blocks[1].conv.scale_depth == 2
    with pytest.raises(ValueError):
        methods.create("sesn", variant="tensor")
    with pytest.raises(ValueError):
        methods.create("sesn", config="stl10", plus=True)
