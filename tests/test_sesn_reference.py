"""SESN against the authors' code (ISosnovik/sesn at deaa16c; tests/fixtures/sesn/SOURCE.md).

Bases A and B, every layer kind on fixed weights, the MNIST trunks and the STL-10
wide ResNets (variants A, B, C at width 2) on the fixtures' weights, all to float32
precision; parameter counts of every published MNIST and STL-10 model: exact on
STL-10, and on MNIST the authors' count minus the head difference that the global
head (variable input sizes) costs.
"""

from __future__ import annotations

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

from scaleqbench import methods
from scaleqbench.methods.sesn.basis import specs_b, steerable_basis
from scaleqbench.methods.sesn.layers import SESConv1x1, SESConvHH, SESLift
from scaleqbench.methods.sesn.models import (
    MNIST_PUBLISHED,
    STL10_SCALES,
    SESNMnist,
    SESNWideResNet,
)

REF = load_arrays("sesn")
COUNTS = load_counts("sesn")
# the layer fixtures' configuration: the published vector MNIST grid, basis B
VEC = dict(kernel_size=13, effective_size=7, scales=(1.5, 2.6, 4.5), basis="B", mult=1.5,
           max_order=4)


def test_basis_a_matches_the_authors():
    ours = steerable_basis("A", 7, STL10_SCALES, 3)  # the STL-10 models' basis
    assert_float32_close(ours, REF["basis_A"].double(), rel=1e-6)


def test_basis_b_matches_the_authors():
    ours = steerable_basis("B", 15, (1.7, 2.45, 3.54, 5.1), 7, mult=1.5, max_order=4)
    assert_float32_close(ours, REF["basis_B"].double(), rel=1e-6)


def test_basis_b_last_group_keeps_the_first_four_functions_of_the_group_order():
    # 49 = 3 x 15 + 4: the narrowest group keeps n_x = 0 with n_y = 0..3 (the authors'
    # "x" is our row axis y), not the four lowest total degrees
    sigma = 1.7
    last = specs_b(sigma, 7, 1.5, 4)[45:]
    assert [(nx, ny) for _, nx, ny in last] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert all(s == pytest.approx(sigma / 1.5 ** 3) for s, _, _ in last)


def _loaded(layer: torch.nn.Module, **tensors: torch.Tensor) -> torch.nn.Module:
    with torch.no_grad():
        for name, t in tensors.items():
            getattr(layer, name).copy_(t)
    return layer


def test_lift_matches_the_authors_z2_h_conv():
    layer = _loaded(SESLift(3, 4, **VEC), weight=REF["lift_weight"], bias=REF["lift_bias"])
    with torch.no_grad():
        assert_float32_close(layer(REF["lift_x"]), REF["lift_y"])


def test_strided_basis_a_lift_matches_the_authors():
    layer = _loaded(SESLift(3, 4, 7, 3, STL10_SCALES, basis="A", stride=2, bias=False),
                    weight=REF["lifta_weight"])
    with torch.no_grad():
        assert_float32_close(layer(REF["lifta_x"]), REF["lifta_y"])


@pytest.mark.parametrize("depth", [1, 2])
def test_scale_conv_matches_the_authors_h_h_conv(depth):
    layer = _loaded(SESConvHH(3, 4, scale_depth=depth, **VEC),
                    weight=REF[f"hh{depth}_weight"], bias=REF[f"hh{depth}_bias"])
    with torch.no_grad():
        assert_float32_close(layer(REF[f"hh{depth}_x"]), REF[f"hh{depth}_y"])


def test_1x1_matches_the_authors():
    layer = SESConv1x1(3, 4, stride=2)
    _loaded(layer.conv, weight=REF["p1x1_weight"])
    with torch.no_grad():
        assert_float32_close(layer(REF["p1x1_x"]), REF["p1x1_y"])


def test_conv_biases_start_at_zero_as_the_authors():
    torch.manual_seed(0)
    for layer in (SESLift(2, 3, **VEC), SESConvHH(2, 3, **VEC)):
        assert torch.count_nonzero(layer.bias) == 0
        assert layer.weight.abs().sum() > 0


@pytest.mark.parametrize("variant", ["scalar", "vector"])
def test_mnist_trunk_matches_the_authors(variant):
    """The three blocks on the fixtures' weights, eval mode. The authors' last block pools
    4x4 (padding 2) before its BN, ours leaves the map for the global head: with BN
    scales > 0 (as the weights are) BN and max-pool commute, so pooling our map gives theirs."""
    model = SESNMnist(variant=variant, **MNIST_PUBLISHED[(variant, False)]).eval()
    assert parameter_shapes(model.blocks)[0] == (32, 1, 49)
    fill(model.blocks, 50)
    assert all(b.bn.weight.min() > 0 for b in model.blocks)
    with torch.no_grad():
        x = REF["mnist_x"]
        for block in model.blocks:
            x = block(x)
        assert x.shape == (2, 95, 7, 7)
        assert_float32_close(F.max_pool2d(x, 4, padding=2), REF[f"mnist_{variant}_trunk"])


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_stl10_wide_resnet_matches_the_authors(variant):
    """WRN-16-2 (the published WRN-16-8 at width 2) on the fixtures' weights, eval mode: logits."""
    model = SESNWideResNet(widen=2, wrn_variant=variant).eval()
    fill(model, 60)
    with torch.no_grad():
        assert_float32_close(model(REF["wrn_x"]), REF[f"wrn_{variant.lower()}_logits"], rel=1e-4)


#: the authors' MNIST model -> our method and overrides (the "56" models read MNIST upsampled
#: to 56 px with their own scales, mult and kernel size; their parameters do not depend on it)
def _grid(n: int, factor: float, smallest: float) -> tuple[float, ...]:
    q = factor ** (1 / (n - 1))
    return tuple(round(smallest * q ** i, 2) for i in range(n))


MNIST_MODELS = {
    "mnist_ses_scalar_28": ("sesn", {}),
    "mnist_ses_scalar_28p": ("sesn", dict(plus=True)),
    "mnist_ses_vector_28": ("sesn_vector", {}),
    "mnist_ses_vector_28p": ("sesn_vector", dict(plus=True)),
    "mnist_ses_scalar_56": ("sesn", dict(scales=_grid(3, 2.0, 2.0), mult=1.4, kernel_size=15)),
    "mnist_ses_scalar_56p": ("sesn", dict(scales=_grid(3, 3.0, 1.0), mult=1.4, kernel_size=17)),
    "mnist_ses_vector_56": ("sesn_vector", dict(scales=_grid(4, 2.0, 2.0), mult=1.5,
                                                kernel_size=15)),
    "mnist_ses_vector_56p": ("sesn_vector", dict(scales=_grid(4, 2.0, 1.5), mult=1.4,
                                                 kernel_size=13)),
}
STL10_MODELS = {
    "wrn_16_8_ses_a": ("sesn_vector", {}),
    "wrn_16_8_ses_b": ("sesn", {}),
    "wrn_16_8_ses_c": ("sesn", dict(wrn_variant="C")),
}


def head_difference(channels: int = 95, hidden: int = 256) -> int:
    """Parameters of the authors' Linear(4 C, hidden) on a flattened 2x2 map that our
    Linear(C, hidden) on the global max does not have (neither has a bias)."""
    return (4 - 1) * channels * hidden


def test_fixture_lists_every_published_model():
    assert set(COUNTS) == set(MNIST_MODELS) | set(STL10_MODELS)


@pytest.mark.parametrize("published", sorted(MNIST_MODELS))
def test_mnist_count_is_the_authors_minus_the_flatten_head(published):
    name, overrides = MNIST_MODELS[published]
    ours = n_params(methods.create(name, **overrides))
    assert ours == COUNTS[published] - head_difference()
    assert (COUNTS[published], ours) == (494_549, 421_589)


@pytest.mark.parametrize("published", sorted(STL10_MODELS))
def test_stl10_count_equals_the_authors(published):
    name, overrides = STL10_MODELS[published]
    assert n_params(methods.create(name, in_channels=3, config="stl10", **overrides)) == \
        COUNTS[published]


def test_registry_names_the_reference():
    for name in ("sesn", "sesn_vector"):
        ref = methods.get_method(name).reference
        assert ref.startswith("ISosnovik/sesn@deaa16c") and ref.endswith(":models/mnist_ses.py")
