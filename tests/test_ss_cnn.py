"""SS-CNN: agreement with the authors' code (fixtures) and the models. (Steerability of the
basis and the max over kernel sizes: tests/test_ss_cnn_steering.py.)

Fixtures (``tests/fixtures/ss_cnn/``, see SOURCE.md there): the reference basis for the
published MNIST layer and the STL-10 WRN's first conv (sizes 3/5/7), one layer's per-size
kernels and output on a fixed input with fixed coefficients, the published models'
parameter counts, and the whole STL-10 WRN's logits at width 2 (its block convs at size 3
alone, as the published code builds them).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from reference_fixtures import assert_float32_close, fill

from scaleqbench import methods
from scaleqbench.bench.run.recipes import recipe_for
from scaleqbench.methods.ss_cnn.basis import log_radial_basis
from scaleqbench.methods.ss_cnn.layers import DEFAULT_PHIS, ScaleSteerableConv
from scaleqbench.methods.ss_cnn.models import SSCNNMnist, SSCNNWideResNet

from ss_cnn_support import MNIST_SIZES


REF = np.load(Path(__file__).parent / "fixtures" / "ss_cnn" / "reference.npz")


WRN = np.load(Path(__file__).parent / "fixtures" / "ss_cnn" / "wrn.npz")


def T(name: str) -> torch.Tensor:
    return torch.from_numpy(REF[name])


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * b.abs().max().item())


# ---------------------------------------------------------------- the authors' code


@pytest.mark.parametrize("prefix,size,ks", [("", 13, (0.5, 1, 2)), ("b_", 7, (1,))])
def test_basis_matches_reference(prefix, size, ks):
    re, im, k_eff = log_radial_basis(size, ks, DEFAULT_PHIS, math.pi / 16, -math.pi / 4)
    # theirs is (K, size, size, F)
    close(re.float(), T(prefix + "filter_real").permute(0, 3, 1, 2))
    close(im.float(), T(prefix + "filter_imag").permute(0, 3, 1, 2))
    np.testing.assert_allclose(k_eff, REF[prefix + "effective_k"], rtol=1e-14)


def _layer(prefix: str) -> ScaleSteerableConv:
    if prefix == "":  # mnist_ss_28's conv1: base 11, sizes 5...13, k 0.5/1/2, ReLU
        m = ScaleSteerableConv(3, 4, 11, MNIST_SIZES)
    else:  # wrn_16_8_ss's first conv (base 3, sizes 3/5/7, k 1, no ReLU), here at stride 2
        m = ScaleSteerableConv(3, 4, 3, (3, 5, 7), ks=(1,), stride=2, relu=False)
    with torch.no_grad():
        m.weight_real.copy_(T(prefix + "mult_real"))
        m.weight_imag.copy_(T(prefix + "mult_imag"))
    return m


def test_kernels_match_reference():
    m = _layer("")
    for i in range(len(MNIST_SIZES)):
        close(m.kernel(i), T(f"kernel_{i}"))


@pytest.mark.parametrize("prefix", ["", "b_"])
def test_layer_output_matches_reference(prefix):
    with torch.no_grad():
        close(_layer(prefix)(T(prefix + "x")), T(prefix + "out"))


def _unused_const_real(model: torch.nn.Module) -> int:
    """The reference keeps one ``(C', C)`` tensor per layer that its forward never reads."""
    return sum(m.in_channels * m.out_channels for m in model.modules()
               if isinstance(m, ScaleSteerableConv))


def test_mnist_param_count():
    m = methods.create("ss_cnn")
    assert isinstance(m, SSCNNMnist)
    c3, hidden = 90, 256
    # theirs - unused const_real (7,230) - unused bn3 (2 C3) - (4 - 1) C3 hidden of the flat head
    expected = int(REF["params_mnist_ss_28"]) - _unused_const_real(m) - 2 * c3 - 3 * c3 * hidden
    assert n_params(m) == expected == 417_158


def test_stl10_wrn_matches_the_authors():
    """WRN-16-2 (the published wrn_16_8_ss at width 2) on the fixtures' weights, eval mode, at
    96 px (where the published fixed 24x24 average is the global one): the authors' logits to
    float32 precision. Their NetworkBlock never passes the size range on, so only the first
    conv takes the max over 3/5/7; the 12 block convs are single 3x3 steerable filters."""
    model = SSCNNWideResNet(widen=2).eval()
    convs = [m for m in model.modules() if isinstance(m, ScaleSteerableConv)]
    assert [len(m.sizes) for m in convs] == WRN["wrn_kernel_sizes"].tolist() == [3] + [1] * 12
    assert convs[0].sizes == (3, 5, 7) and all(m.sizes == (3,) for m in convs[1:])
    fill(model, 80)
    x = torch.from_numpy(WRN["wrn_x"])
    with torch.no_grad():
        assert_float32_close(model(x), torch.from_numpy(WRN["wrn_logits"]))
        # sizes 3/5/7 in every conv is another network (what an earlier version built)
        everywhere = SSCNNWideResNet(widen=2, block_sizes=(3, 5, 7)).eval()
        fill(everywhere, 80)
        diff = (everywhere(x) - torch.from_numpy(WRN["wrn_logits"])).norm()
        assert diff > 0.1 * torch.from_numpy(WRN["wrn_logits"]).norm()


def test_stl10_param_count():
    m = methods.create("ss_cnn", in_channels=3, config="stl10")
    assert isinstance(m, SSCNNWideResNet)
    assert n_params(m) == int(REF["params_wrn_16_8_ss"]) - _unused_const_real(m) == 10_280_522


# ---------------------------------------------------------------- models and registry


def test_registry_metadata():
    e = methods.get_method("ss_cnn")
    assert e.family == "scale-invariant" and e.year == 2019 and "1906.03861" in e.paper
    assert e.reference.startswith("ISosnovik/sesn@deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac:")
    assert {"mnist", "stl10", "quick"} <= set(e.configs)
    r = recipe_for("ss_cnn", "mnist")
    assert (r.optimizer, r.lr, r.milestones, r.epochs, r.batch_size) == (
        "adam", 1e-2, (20, 40), 60, 128)
    r = recipe_for("ss_cnn", "stl10")
    assert (r.optimizer, r.lr, r.nesterov, r.weight_decay, r.milestones, r.gamma, r.epochs) == (
        "sgd", 0.1, True, 5e-4, (300, 400, 600, 800), 0.2, 1000)
    conv = methods.create("ss_cnn").blocks[0][0]
    assert (conv.base_size, conv.sizes, conv.ks, conv.num_funcs) == (
        11, MNIST_SIZES, (0.5, 1.0, 2.0), 9)


def test_small_wrn_at_stl_sizes():
    torch.manual_seed(0)
    m = SSCNNWideResNet(widen=1).eval()
    with torch.no_grad():
        for size in (49, 96, 97):
            x = torch.randn(1, 3, size, size)
            assert m(x).shape == (1, 10)
            feats = m.features(x)
            assert all(f.dim() == 4 for f in feats.values())
            assert feats["proj"].shape[1] == 44


def test_published_mnist_config_accepts_extreme_sizes():
    m = methods.create("ss_cnn").eval()
    with torch.no_grad():
        for size in (8, 28):
            assert m(torch.rand(2, 1, size, size)).shape == (2, 10)
