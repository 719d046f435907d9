"""DSS against the SESN benchmark's DSS code (ISosnovik/sesn at deaa16c; tests/fixtures/dss/SOURCE.md).

The scale-space lift (its kernels and its output), the scale convolution on fixed
weights, the MNIST trunks and the STL-10 wide ResNet (width 2) on the fixtures'
weights, all to float32 precision; parameter counts of every published MNIST and
STL-10 model: exact on STL-10, the authors' minus the head difference on MNIST.
The one architectural departure left besides the head, the vector model's dilated
max-pools, is pinned: it changes every scale but the first, and nothing else.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_fixtures import (
    assert_float32_close,
    fill,
    load_arrays,
    load_counts,
    n_params,
    parameter_shapes,
)
from torch import nn

from scaleqbench import methods
from scaleqbench.methods.dss import DSSMnist, DSSWideResNet, ScaleConv, ScaleSpaceLift
from scaleqbench.methods.dss.scale_space import discrete_gaussian, lift_variances

REF = load_arrays("dss")
COUNTS = load_counts("dss")


@pytest.mark.parametrize("tag,zero_scale,n_scales", [("stl", 0.5, 4), ("mnist", 0.25, 2)])
def test_lift_kernels_are_the_authors(tag, zero_scale, n_scales):
    lift = ScaleSpaceLift(n_scales, zero_scale)
    for s in range(1, n_scales):
        assert_float32_close(lift.kernel(s), REF[f"lift_{tag}_kernel{s}"], rel=1e-6)


def test_lift_output_is_the_authors_and_the_tail_rule_is_not():
    x, ref = REF["lift_x"], REF["lift_y"]
    with torch.no_grad():
        assert_float32_close(ScaleSpaceLift(4, 0.5)(x), ref)
        # the tail-mass cut (10+ sigma) is a different, if close, scale-space
        diff = (ScaleSpaceLift(4, 0.5, tail=1e-10)(x) - ref).abs().max().item()
    assert 1e-5 < diff < 1e-3


def test_published_truncation_keeps_the_semigroup_to_2e_5():
    ts = lift_variances(4, 0.5)
    lift = ScaleSpaceLift(4, 0.5).double()
    for s in range(1, 3):
        step = discrete_gaussian(ts[s + 1] - ts[s], half_width=4 * int(np.ceil(
            np.sqrt(ts[s + 1] - ts[s]))))
        conv = np.convolve(lift.kernel(s).numpy(), step)
        direct = lift.kernel(s + 1).numpy()
        pad = (conv.size - direct.size) // 2
        direct = np.pad(direct, pad) if pad >= 0 else direct[-pad:pad]
        assert np.abs(conv - direct).max() < 3e-5


def _conv(n_scales: int, k: int, depth: int, stride: int, weight: torch.Tensor) -> ScaleConv:
    layer = ScaleConv(3, 4, k, n_scales, depth=depth, stride=stride)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def test_scale_conv_matches_the_authors_dconv():
    layer = _conv(2, 7, 1, 1, REF["conv1_weight"])  # the MNIST layers: 7x7, 2 scales, depth 1
    with torch.no_grad():
        assert_float32_close(layer(REF["conv1_x"]), REF["conv1_y"])


def test_deep_strided_scale_conv_matches_the_authors_on_the_scales_kept():
    """Depth 2, stride 2 (the STL-10 groups' first conv). The authors compute the last
    scale with the kernel cut to one scale, and their next layer drops it; ours never
    computes it ("valid" along scale). Every scale both compute agrees."""
    layer = _conv(3, 3, 2, 2, REF["conv2_weight"])
    with torch.no_grad():
        out = layer(REF["conv2_x"])
    assert out.shape[2] == 2 and REF["conv2_y"].shape[2] == 3
    assert_float32_close(out, REF["conv2_y"][:, :, :2])


def _last_block_unprojected(model: DSSMnist, x: torch.Tensor) -> torch.Tensor:
    h = model.lift(x)
    for blk in model.blocks[:-1]:
        h = blk(h)
    last = model.blocks[-1]
    return last.bn(last.pool(last.act(last.conv(h))))


def test_mnist_scalar_trunk_matches_the_authors():
    """Blocks on the fixtures' weights, eval mode; the authors' last block pools 4x4
    (padding 2) before BN, which commutes with BN for its positive scales."""
    model = DSSMnist(variant="scalar").eval()
    assert parameter_shapes(model.blocks)[0] == (32, 1, 1, 7, 7)
    fill(model.blocks, 50)
    with torch.no_grad():
        x = REF["mnist_x"]
        for blk in model.blocks:
            x = blk(x)
        assert_float32_close(F.max_pool2d(x, 4, padding=2), REF["mnist_scalar_trunk"])


class _PlainPool(nn.Module):
    """The SESN benchmark's pool: the same undilated 2x2 window at every scale."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(x, (1, 2, 2), ceil_mode=True)


def test_mnist_vector_trunk_differs_from_the_authors_only_by_the_dilated_pools():
    model = DSSMnist(variant="vector").eval()
    fill(model.blocks, 50)
    ref = REF["mnist_vector_trunk"]  # (B, C, S, 2, 2), before the projection over scales
    x = REF["mnist_x"]
    with torch.no_grad():
        ours = F.max_pool3d(_last_block_unprojected(model, x), (1, 4, 4), padding=(0, 2, 2))
        # scale 0 is pooled with the plain window by both: equal; scale 1 is not
        assert_float32_close(ours[:, :, 0], ref[:, :, 0])
        assert (ours[:, :, 1] - ref[:, :, 1]).abs().max() > 1e-2 * ref.abs().max()
        for blk in model.blocks[:-1]:
            blk.pool = _PlainPool()
        plain = F.max_pool3d(_last_block_unprojected(model, x), (1, 4, 4), padding=(0, 2, 2))
    assert_float32_close(plain, ref)


def test_stl10_wide_resnet_matches_the_authors():
    """WRN-16-2 (the published WRN-16-8 at width 2: widths 16/32/60/128) on the fixtures'
    weights, eval mode, at 96 px (the authors' head averages a fixed 24x24 window)."""
    model = DSSWideResNet(widths=(16, 32, 60, 128)).eval()
    fill(model, 60)
    with torch.no_grad():
        assert_float32_close(model(REF["wrn_x"]), REF["wrn_logits"])


def test_wide_resnet_shortcuts_have_scale_depth_one():
    model = DSSWideResNet(widths=(16, 32, 60, 128))
    firsts = [g[0] for g in model.groups]
    assert [b.conv1.depth for b in firsts] == [2, 2, 1]
    assert [b.shortcut.depth for b in firsts] == [1, 1, 1]
    assert [b.shortcut.n_scales for b in firsts] == [3, 2, 2]


MNIST_MODELS = {"mnist_dss_vector_28": "dss", "mnist_dss_vector_56": "dss",
                "mnist_dss_scalar_28": "dss_scalar", "mnist_dss_scalar_56": "dss_scalar"}


def head_difference(channels: int = 95, hidden: int = 256) -> int:
    """The authors' Linear(4 C, hidden) on a flattened 2x2 map against our Linear(C, hidden)
    on the global max (neither with a bias)."""
    return (4 - 1) * channels * hidden


def test_fixture_lists_every_published_model():
    assert set(COUNTS) == set(MNIST_MODELS) | {"wrn_16_8_dss"}


@pytest.mark.parametrize("published", sorted(MNIST_MODELS))
def test_mnist_count_is_the_authors_minus_the_flatten_head(published):
    ours = n_params(methods.create(MNIST_MODELS[published]))
    assert ours == COUNTS[published] - head_difference()
    assert (COUNTS[published], ours) == (494_359, 421_399)


def test_stl10_count_equals_the_authors():
    ours = n_params(methods.create("dss", in_channels=3, config="stl10"))
    assert ours == COUNTS["wrn_16_8_dss"] == 10_939_482


def test_registry_names_the_reference():
    for name in ("dss", "dss_vector", "dss_scalar"):
        ref = methods.get_method(name).reference
        assert ref.startswith("ISosnovik/sesn@deaa16c") and ref.endswith(":models/mnist_dss.py")
