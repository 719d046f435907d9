"""The ``cnn`` baselines: structure, parameter counts from the architecture, and the
authors' code (ISosnovik/sesn at deaa16c; tests/fixtures/cnn/SOURCE.md).

The model protocol (every size, features, gradients, one step) is checked for
every method in tests/test_methods_contract.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference_fixtures import assert_float32_close, fill, load_arrays, load_counts
from torch import nn

from scaleqbench import methods
from scaleqbench.methods.cnn import CNN, ConvBlock, WideResNet

REF = load_arrays("cnn")
COUNTS = load_counts("cnn")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(c_in: int, c_out: int, k: int) -> int:
    """A k x k convolution with bias."""
    return k * k * c_in * c_out + c_out


def bn(c: int) -> int:
    return 2 * c  # a weight and a bias per channel


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def cnn_params(channels: tuple[int, ...], hidden: int, k: int = 7, in_ch: int = 1,
               classes: int = 10) -> int:
    """Per block conv k x k + BN (ReLU and max-pool have none); head
    Linear(C, hidden, no bias) -> BN1d -> ReLU -> Dropout -> Linear(hidden, classes)."""
    total, c_prev = 0, in_ch
    for c in channels:
        total += conv(c_prev, c, k) + bn(c)
        c_prev = c
    return total + linear(c_prev, hidden, bias=False) + bn(hidden) + linear(hidden, classes)


def wrn_params(widen: int = 8, n: int = 2, in_ch: int = 3, classes: int = 10) -> int:
    """Plain pre-activation WRN-(6n+4)-widen: 3x3 convs without bias, a 1x1 shortcut where
    the width changes, BN before each conv; head BN + Linear."""
    w = [16, 16 * widen, 32 * widen, 64 * widen]
    total = 9 * in_ch * w[0]
    for g in range(3):
        for i in range(n):
            ci = w[g] if i == 0 else w[g + 1]
            total += bn(ci) + 9 * ci * w[g + 1] + bn(w[g + 1]) + 9 * w[g + 1] ** 2
            total += ci * w[g + 1] if ci != w[g + 1] else 0
    return total + bn(w[3]) + linear(w[3], classes)


@pytest.mark.parametrize("config,channels,hidden", [
    ("mnist", (32, 63, 95), 256),   # SESN's MNIST CNN, with a global-pool head
    ("quick", (16, 32, 48), 128),
])
def test_parameter_counts(config, channels, hidden):
    model = methods.create("cnn", config=config)
    assert [b[0].out_channels for b in model.blocks] == list(channels)
    assert {b[0].kernel_size for b in model.blocks} == {(7, 7)}
    assert n_params(model) == cnn_params(channels, hidden)


def test_parameter_count_follows_channels_and_classes():
    model = methods.create("cnn", in_channels=3, num_classes=7, config="quick", kernel_size=3)
    assert n_params(model) == cnn_params((16, 32, 48), 128, k=3, in_ch=3, classes=7)


def test_stl10_config_is_the_wrn_16_8():
    model = methods.create("cnn", in_channels=3, config="stl10")
    assert isinstance(model, WideResNet)
    assert n_params(model) == wrn_params()


def test_block_order_is_the_authors():
    block = ConvBlock(1, 4, 7, pool=True)
    assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d]
    assert [type(m) for m in ConvBlock(1, 4, 7, pool=False)] == [
        nn.Conv2d, nn.ReLU, nn.BatchNorm2d]


def test_block_matches_the_authors():
    """The authors' first block (conv 7x7 -> ReLU -> max-pool 2 -> BN) on fixed weights, eval."""
    block = ConvBlock(1, 32, 7, pool=True).eval()
    with torch.no_grad():
        block[0].weight.copy_(REF["block_conv_weight"])
        block[0].bias.copy_(REF["block_conv_bias"])
        bn_ = block[3]
        bn_.weight.copy_(REF["block_bn_weight"])
        bn_.bias.copy_(REF["block_bn_bias"])
        bn_.running_mean.copy_(REF["block_bn_mean"])
        bn_.running_var.copy_(REF["block_bn_var"])
        assert_float32_close(block(REF["block_x"]), REF["block_y"])


def test_mnist_trunk_matches_the_authors():
    """Three blocks on the fixtures' weights, eval mode. The authors' last block pools 4x4
    (padding 2) before its BN, ours leaves the map for the global head: with BN scales > 0
    BN and max-pool commute, so pooling our map gives theirs."""
    model = methods.create("cnn").eval()
    fill(model.blocks, 50)
    assert all(b[-1].weight.min() > 0 for b in model.blocks)
    with torch.no_grad():
        x = REF["mnist_x"]
        for block in model.blocks:
            x = block(x)
        assert_float32_close(F.max_pool2d(x, 4, padding=2), REF["mnist_trunk"])


def test_wide_resnet_matches_the_authors():
    """WRN-16-2 (the published WRN-16-8 at width 2) on the fixtures' weights, eval mode."""
    model = WideResNet(widen=2).eval()
    fill(model, 60)
    with torch.no_grad():
        assert_float32_close(model(REF["wrn_x"]), REF["wrn_logits"])


def head_difference(channels: int = 95, hidden: int = 256) -> int:
    """The authors' Linear(4 C, hidden) on a flattened 2x2 map against our Linear(C, hidden)
    on the global max (neither with a bias)."""
    return (4 - 1) * channels * hidden


@pytest.mark.parametrize("published", ["mnist_cnn_28", "mnist_cnn_56"])
def test_mnist_count_is_the_authors_minus_the_flatten_head(published):
    ours = n_params(methods.create("cnn"))
    assert isinstance(methods.create("cnn"), CNN)
    assert ours == COUNTS[published] - head_difference()
    assert (COUNTS[published], ours) == (494_549, 421_589)


def test_stl10_count_equals_the_authors():
    assert n_params(methods.create("cnn", in_channels=3, config="stl10")) == \
        COUNTS["wrn_16_8"] == 10_961_370


def test_registry_names_the_reference():
    ref = methods.get_method("cnn").reference
    assert ref.startswith("ISosnovik/sesn@deaa16c") and ref.endswith(":models/mnist_cnn.py")


def test_small_wrn_accepts_stl_sizes():
    torch.manual_seed(0)
    model = methods.create("cnn", in_channels=3, config="stl10", widen=1).eval()
    with torch.no_grad():
        for size in (49, 96, 97):
            x = torch.randn(1, 3, size, size)
            assert model(x).shape == (1, 10)
            feats = model.features(x)
            assert list(feats) == ["stem", "group1", "group2", "group3", "final"]
            assert all(f.dim() == 4 for f in feats.values())
            assert feats["final"].shape[1] == 64
