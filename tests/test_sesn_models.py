"""SESN models: registry entries, parameter counts and what is particular to SESN.

The model protocol (every size, features, gradients, one step) is checked for
every method in tests/test_methods_contract.py. Training recipes are checked
against the published protocols in tests/test_registry.py.
"""

from __future__ import annotations

import pytest
import torch

from scaleqbench import methods
from scaleqbench.methods.sesn.models import MNIST_PUBLISHED, SESNMnist, SESNWideResNet


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# Parameter counts from the architecture, layer by layer. A SESN convolution learns one
# coefficient per basis function and (out, in[, scale-depth]) pair, plus a bias per output
# channel; the basis (A or B) of effective size e has e * e functions (SESN, Sec. 4 / App.;
# methods/sesn/basis.py), whatever the kernel size and number of scales.
def ses_conv(c_in: int, c_out: int, eff: int = 7, depth: int = 1, bias: bool = True) -> int:
    return c_out * c_in * depth * eff * eff + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def mnist_params(channels: tuple[int, ...], hidden: int, eff: int = 7, depth: int = 1,
                 vector: bool = False, in_ch: int = 1, classes: int = 10) -> int:
    """SESNMnist: per block a SES conv (the vector variant's blocks 2.. read ``depth`` scales)
    and a BN shared over scales; head Linear(C, hidden, no bias) -> BN1d -> ReLU -> Dropout
    -> Linear."""
    total, c_prev = 0, in_ch
    for i, c in enumerate(channels):
        d = depth if vector and i > 0 else 1
        total += ses_conv(c_prev, c, eff, d) + bn(c)
        c_prev = c
    return total + linear(c_prev, hidden, bias=False) + bn(hidden) + linear(hidden, classes)


def test_registered_names_and_configs():
    assert {"sesn", "sesn_vector"} <= set(methods.list_methods("sesn*"))
    for name in ("sesn", "sesn_vector"):
        entry = methods.get_method(name)
        assert {"mnist", "stl10", "quick"} <= set(entry.configs)
        assert entry.family == "scale-equivariant"


@pytest.mark.parametrize("variant,plus", list(MNIST_PUBLISHED))
def test_mnist_param_counts(variant, plus):
    m = methods.create("sesn", variant=variant, plus=plus)
    hp = MNIST_PUBLISHED[(variant, plus)]
    conv = m.blocks[0].conv.kernel
    assert conv.scales == hp["scales"] and conv.kernel_size == hp["kernel_size"]
    assert conv.num_funcs == 7 * 7 and conv.basis_type == "B"
    # 32/63/95, effective size 7, head 256: whatever the kernel size and scales
    assert n_params(m) == mnist_params((32, 63, 95), hidden=256)


@pytest.mark.parametrize("name", ["sesn", "sesn_vector"])
def test_quick_param_counts(name):
    # 12/24/36, effective size 7, head 128
    assert n_params(methods.create(name, config="quick")) == mnist_params((12, 24, 36), hidden=128)


def test_scale_depth_multiplies_the_coefficients_of_the_vector_blocks():
    m = methods.create("sesn", variant="vector", config="quick", scale_depth=2)
    assert n_params(m) == mnist_params((12, 24, 36), hidden=128, depth=2, vector=True)


def test_published_scales_are_geometric_with_factor_3():
    for (variant, plus), hp in MNIST_PUBLISHED.items():
        s = hp["scales"]
        q = 3 ** (1 / (len(s) - 1))
        assert s == tuple(round(s[0] * q ** i, 2) for i in range(len(s)))


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


@pytest.mark.parametrize("name", ["sesn", "sesn_vector"])
def test_quick_features_carry_the_scale_axis_of_the_variant(name):
    torch.manual_seed(0)
    m = methods.create(name, config="quick").eval()
    n_s = len(m.blocks[0].conv.kernel.scales)
    with torch.no_grad():
        feats = m.features(torch.randn(2, 1, 19, 19))
    assert list(feats) == ["block1", "block2", "block3"]
    # the vector variant folds its scale axis into channels until the max at the end of block 3
    folded = n_s if name == "sesn_vector" else 1
    assert [f.shape[1] for f in feats.values()] == [12 * folded, 24 * folded, 36]


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


def test_wrn_shortcuts_start_he_normal_over_their_fan_out():
    # as the authors' STL-10 model: N(0, 2 / fan_out), fan_out = C_out for a 1x1 conv
    # (nn.Conv2d's default would give a std of 1 / sqrt(3 C_in), 2.4x smaller here)
    torch.manual_seed(0)
    m = SESNWideResNet(widen=2)
    shortcuts = [b.shortcut.conv.weight for g in m.groups for b in g if b.shortcut is not None]
    assert len(shortcuts) == 3
    for w in shortcuts:
        assert w.std().item() == pytest.approx((2 / w.shape[0]) ** 0.5, rel=0.1)
