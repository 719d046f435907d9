"""DSS models: registration, configurations, parameter counts and the model protocol."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scalebench import methods
from scalebench.methods.dss import DSSMnist, DSSWideResNet
from scalebench.methods.registry import MNIST_RECIPE, STL10_RECIPE, UnknownConfigError

NAMES = ["dss", "dss_vector", "dss_scalar"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_names_variants_and_recipes():
    assert set(NAMES) <= set(methods.list_methods("dss*"))
    assert methods.create("dss").variant == "vector"
    assert methods.create("dss_vector").variant == "vector"
    assert methods.create("dss_scalar").variant == "scalar"
    assert methods.create("dss", variant="scalar").variant == "scalar"
    entry = methods.get_method("dss")
    assert entry.recipe("mnist") == MNIST_RECIPE
    assert (MNIST_RECIPE.optimizer, MNIST_RECIPE.lr, MNIST_RECIPE.milestones,
            MNIST_RECIPE.epochs, MNIST_RECIPE.batch_size) == ("adam", 1e-2, (20, 40), 60, 128)
    stl = entry.recipe("stl10")
    assert stl == STL10_RECIPE
    assert (stl.optimizer, stl.nesterov, stl.momentum, stl.lr, stl.weight_decay, stl.batch_size,
            stl.epochs, stl.milestones, stl.gamma) == (
        "sgd", True, 0.9, 0.1, 5e-4, 128, 1000, (300, 400, 600, 800), 0.2)
    with pytest.raises(UnknownConfigError):
        methods.create("dss_scalar", config="stl10")
    with pytest.raises(ValueError):
        methods.create("dss", variant="tensor")


@pytest.mark.parametrize("name", NAMES)
def test_mnist_parameter_count_matches_cnn(name):
    # the `cnn` skeleton with bias-free scale convolutions: 190 conv biases fewer than `cnn`
    cnn = n_params(methods.create("cnn"))
    assert cnn == 421_845
    assert n_params(methods.create(name)) == cnn - (32 + 63 + 95) == 421_655
    # quick: 12/24/36 (two scales cost about twice a plain conv; see methods/dss/__init__.py)
    assert n_params(methods.create(name, config="quick")) == 63_462


def test_mnist_model_structure():
    m = methods.create("dss")
    lift = m.lift
    assert (lift.n_scales, lift.zero_scale, lift.base) == (2, 0.25, 2)
    convs = [b.conv for b in m.blocks]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.depth) for c in convs] == [
        (1, 32, 7, 1), (32, 63, 7, 1), (63, 95, 7, 1)]
    assert [convs[0].dilation(s) for s in range(2)] == [1, 2]


def test_stl10_wrn_16_8_parameter_count():
    # the published DSS WRN-16-8 has 11.0M parameters (SESN, Table 4)
    m = methods.create("dss", in_channels=3, config="stl10")
    assert isinstance(m, DSSWideResNet)
    assert n_params(m) == 10_972_250
    assert m.lift.n_scales == 4 and m.lift.zero_scale == 0.5
    assert [g[0].conv1.depth for g in m.groups] == [2, 2, 1]


@pytest.mark.parametrize("name", NAMES)
def test_quick_forward_at_every_mnist_size_and_features(name):
    torch.manual_seed(0)
    m = methods.create(name, config="quick").eval()
    with torch.no_grad():
        for size in range(8, 29):
            assert m(torch.randn(2, 1, size, size)).shape == (2, 10)
        feats = m.features(torch.randn(2, 1, 19, 19))
    assert list(feats) == ["block1", "block2", "block3"]
    n_s = 2 if m.variant == "vector" else 1
    # the vector variant's last block ends with the max over scales
    assert [tuple(v.shape) for v in feats.values()] == [
        (2, 12 * n_s, 10, 10), (2, 24 * n_s, 5, 5), (2, 36, 5, 5)]


def test_vector_features_fold_scales_and_the_last_block_projects_them():
    torch.manual_seed(0)
    m = methods.create("dss", config="quick").eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        maps = dict(m._maps(x))
        feats = m.features(x)
        mid = maps["block2"]
        assert mid.shape[2] == 2  # (B, C, S, H, W): the scale axis is kept through block 2
        torch.testing.assert_close(feats["block2"], mid.reshape(3, -1, *mid.shape[-2:]))
        last = m.blocks[2]
        unprojected = last.pool(last.act(last.bn(last.conv(mid))))
        torch.testing.assert_close(feats["block3"], unprojected.amax(dim=2))
        torch.testing.assert_close(m(x), m.head(unprojected.amax(dim=(2, 3, 4))))


@pytest.mark.parametrize("name", ["dss", "dss_scalar"])
def test_one_optimisation_step_lowers_the_loss(name):
    torch.manual_seed(0)
    m = methods.create(name, config="quick")
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 10, (16,))
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    m.train()
    before = F.cross_entropy(m(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = F.cross_entropy(m(x), y)
    assert after.item() < before.item()


def test_scalar_block_max_covers_the_unlifted_scale():
    """A scalar block's map is the max over the scales of its lift; scale 0 is the plain
    (undilated) convolution of the input, so adding scales can only raise it."""
    torch.manual_seed(0)
    two = DSSMnist(variant="scalar", channels=(4,), n_scales=2, hidden=8).eval()
    one = DSSMnist(variant="scalar", channels=(4,), n_scales=1, hidden=8).eval()
    one.load_state_dict(two.state_dict())
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        b1, b2 = two.blocks[0], one.blocks[0]
        # compare before BN/ReLU (monotone maps) to keep the statement exact
        y2 = b1.scale_pool(b1.conv(b1.lift(x)))
        y1 = b2.scale_pool(b2.conv(b2.lift(x)))
    assert torch.all(y2 >= y1)


@pytest.mark.slow
@pytest.mark.parametrize("size", [49, 96, 97])
def test_stl10_forward_at_its_sizes(size):
    torch.manual_seed(0)
    m = methods.create("dss", in_channels=3, config="stl10").eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, size, size)).shape == (1, 10)
        feats = m.features(torch.randn(1, 3, size, size))
    assert [v.shape[1] for v in feats.values()] == [128 * 3, 240 * 2, 512 * 2, 512]
    assert all(v.dim() == 4 for v in feats.values())


def test_vector_model_scale_one_of_x_is_scale_zero_of_x_down_sampled():
    """Through lift, three blocks and both (dilated) max-pools: scale 0 of every block's map
    of D x equals scale 1 of its map of x, sub-sampled by 2, exactly, where D x is the
    lift's scale 1 of x (the input blurred from zero scale 0.25 to 0.5) sub-sampled by 2
    -- the scale-space action the model is built to commute with."""
    torch.manual_seed(0)
    m = DSSMnist(channels=(4, 5, 6), hidden=8).double().eval()
    with torch.no_grad():
        for blk in m.blocks:  # non-trivial BN statistics (shared over scales)
            blk.bn.running_mean.uniform_(-0.5, 0.5)
            blk.bn.running_var.uniform_(0.5, 2.0)

    def maps(x):
        out, h = [], m.lift(x)
        for blk in m.blocks:
            h = blk.pool(blk.act(blk.bn(blk.conv(h))))  # the last block before its projection
            out.append(h)
        return out

    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        dx = m.lift(x)[:, :, 1, ::2, ::2]
        for fine, coarse in zip(maps(x), maps(dx)):
            torch.testing.assert_close(coarse[:, :, 0], fine[:, :, 1, ::2, ::2],
                                       rtol=1e-10, atol=1e-10)
