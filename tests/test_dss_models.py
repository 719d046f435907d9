"""DSS models: registration, configurations, parameter counts and what is particular to DSS.

The model protocol (every size, features, gradients, one step) is checked for
every method in tests/test_methods_contract.py. Training recipes are checked
against the published protocols in tests/test_registry.py.
"""

from __future__ import annotations

import pytest
import torch

from scaleqbench import methods
from scaleqbench.methods import UnknownConfigError
from scaleqbench.methods.dss import DSSMnist, DSSWideResNet

NAMES = ["dss", "dss_vector", "dss_scalar"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Parameter counts from the architecture, layer by layer. A DSS scale convolution holds
# one k x k kernel per (out, in, scale-depth) triple and no bias (BatchNorm follows); its
# BatchNorm is shared over scales (a weight and a bias per channel). The scale-space lift
# and the max-pools have no parameters.
def scale_conv(c_in: int, c_out: int, k: int, depth: int = 1) -> int:
    return c_out * c_in * depth * k * k


def bn(c: int) -> int:
    return 2 * c


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def mnist_params(channels: tuple[int, ...], hidden: int, k: int = 7, in_ch: int = 1,
                 classes: int = 10) -> int:
    """DSSMnist (either variant at scale depth 1): per block scale conv + BN; the `cnn` head
    Linear(C, hidden, no bias) -> BN1d -> ReLU -> Dropout -> Linear(hidden, classes)."""
    total, c_prev = 0, in_ch
    for c in channels:
        total += scale_conv(c_prev, c, k) + bn(c)
        c_prev = c
    return total + linear(c_prev, hidden, bias=False) + bn(hidden) + linear(hidden, classes)


def wrn_params(widths=(16, 128, 240, 512), depths=(2, 2, 1), n_blocks: int = 2, in_ch: int = 3,
               classes: int = 10) -> int:
    """DSSWideResNet: 3x3 stem, per group a first block (BN, conv of the group's scale depth
    at stride 1/2/2, BN, conv, 1x1 projection shortcut of scale depth 1) and plain blocks
    (BN, conv, BN, conv, identity shortcut); head BN (scales shared) + Linear."""
    total = scale_conv(in_ch, widths[0], 3)
    for g, d in enumerate(depths):
        c_in, c = widths[g], widths[g + 1]
        total += bn(c_in) + scale_conv(c_in, c, 3, d) + bn(c) + scale_conv(c, c, 3)
        total += scale_conv(c_in, c, 1)  # widths change in every group: projected shortcut
        total += (n_blocks - 1) * (bn(c) + scale_conv(c, c, 3) + bn(c) + scale_conv(c, c, 3))
    return total + bn(widths[-1]) + linear(widths[-1], classes)


def test_registered_names_and_variants():
    assert set(NAMES) <= set(methods.list_methods("dss*"))
    assert methods.create("dss").variant == "vector"
    assert methods.create("dss_vector").variant == "vector"
    assert methods.create("dss_scalar").variant == "scalar"
    assert methods.create("dss", variant="scalar").variant == "scalar"
    with pytest.raises(UnknownConfigError):
        methods.create("dss_scalar", config="stl10")
    with pytest.raises(ValueError):
        methods.create("dss", variant="tensor")


@pytest.mark.parametrize("name", NAMES)
def test_mnist_and_quick_parameter_counts(name):
    # mnist: the `cnn` skeleton 32/63/95, k 7, head 256; quick: 12/24/36, head 128
    assert n_params(methods.create(name)) == mnist_params((32, 63, 95), hidden=256)
    assert n_params(methods.create(name, config="quick")) == mnist_params((12, 24, 36), hidden=128)


def test_scale_depth_two_holds_a_second_kernel_per_channel_pair():
    # the scalar variant re-lifts to 3 scales in every block, so every block can read 2 scales
    deep = methods.create("dss_scalar", config="quick", n_scales=3, scale_depth=2)
    assert n_params(deep) == mnist_params((12, 24, 36), hidden=128) + sum(
        scale_conv(c_in, c, 7) for c_in, c in ((1, 12), (12, 24), (24, 36)))


def test_mnist_model_structure():
    m = methods.create("dss")
    lift = m.lift
    assert (lift.n_scales, lift.zero_scale, lift.base) == (2, 0.25, 2)
    convs = [b.conv for b in m.blocks]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.depth) for c in convs] == [
        (1, 32, 7, 1), (32, 63, 7, 1), (63, 95, 7, 1)]
    assert [convs[0].dilation(s) for s in range(2)] == [1, 2]


def test_stl10_wrn_16_8_parameter_count():
    m = methods.create("dss", in_channels=3, config="stl10")
    assert isinstance(m, DSSWideResNet)
    assert n_params(m) == wrn_params()
    # the published DSS WRN-16-8 has 11.0M parameters (SESN, Table 4); 10,939,482 exactly in
    # the authors' code (tests/test_dss_reference.py)
    assert abs(n_params(m) - 11.0e6) < 0.1e6
    assert m.lift.n_scales == 4 and m.lift.zero_scale == 0.5
    assert [g[0].conv1.depth for g in m.groups] == [2, 2, 1]


@pytest.mark.parametrize("name", NAMES)
def test_quick_features_carry_the_scale_axis_of_the_variant(name):
    torch.manual_seed(0)
    m = methods.create(name, config="quick").eval()
    with torch.no_grad():
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
        feats = m.features(x)
        mid = m.blocks[1](m.blocks[0](m.lift(x)))
        assert mid.shape[2] == 2  # (B, C, S, H, W): the scale axis is kept through block 2
        torch.testing.assert_close(feats["block2"], mid.reshape(3, -1, *mid.shape[-2:]))
        last = m.blocks[2]
        unprojected = last.bn(last.pool(last.act(last.conv(mid))))
        torch.testing.assert_close(feats["block3"], unprojected.amax(dim=2))
        torch.testing.assert_close(m(x), m.head(unprojected.amax(dim=(2, 3, 4))))


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
            h = blk.bn(blk.pool(blk.act(blk.conv(h))))  # the last block before its projection
            out.append(h)
        return out

    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        dx = m.lift(x)[:, :, 1, ::2, ::2]
        for fine, coarse in zip(maps(x), maps(dx)):
            torch.testing.assert_close(coarse[:, :, 0], fine[:, :, 1, ::2, ::2],
                                       rtol=1e-10, atol=1e-10)
