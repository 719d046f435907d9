"""SEVF: agreement with the authors' code (fixtures) and the models.

Fixtures (``tests/fixtures/sevf/``, see SOURCE.md there) hold the reference
layers' outputs on fixed inputs with fixed weights, and the parameter counts
of the published models. (The defining properties: tests/test_sevf_properties.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scaleqbench import methods
from scaleqbench.bench.run.recipes import recipe_for
from scaleqbench.methods.sevf.layers import ScaleGrid, SEVFConv, SEVFLift, SEVFScalarConv
from scaleqbench.methods.sevf.vector_field import VectorBatchNorm, VectorMaxPool
from scaleqbench.methods.sevf.models import SEVFMnist
from scaleqbench.methods.sevf.wrn import SEVFWideResNet


REF = np.load(Path(__file__).parent / "fixtures" / "sevf" / "reference.npz")


def T(name: str) -> torch.Tensor:
    return torch.from_numpy(REF[name])


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    # float32 precision relative to the output's scale
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * b.abs().max().item())


def field(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.stack((u, v), 2)


# ---------------------------------------------------------------- the authors' code


def test_published_scale_grid():
    grid = ScaleGrid()
    np.testing.assert_array_equal(grid.scales, REF["scales"])
    np.testing.assert_allclose(grid.angles, REF["angles"], rtol=0, atol=1e-15)
    grid_b = ScaleGrid(n_small=2, n_big=2, base=1.41)
    np.testing.assert_array_equal(grid_b.scales, REF["scales_b"])
    np.testing.assert_allclose(grid_b.angles, REF["angles_b"], rtol=0, atol=1e-15)


@pytest.mark.parametrize("k,grid,prefix,x", [
    (7, {}, "lift", "x"), (5, dict(n_small=2, n_big=2, base=1.41), "lift_b", "x_b")])
def test_lift_matches_reference(k, grid, prefix, x):
    lift, scalar = SEVFLift(3, 4, k, **grid), SEVFScalarConv(3, 4, k, **grid)
    u, v = T(f"{prefix}_u"), T(f"{prefix}_v")
    with torch.no_grad():
        lift.weight.copy_(T(f"{prefix}_weight"))
        scalar.weight.copy_(T(f"{prefix}_weight"))
        close(lift(T(x)), field(u, v))
        close(scalar(T(x)), torch.sqrt(u ** 2 + v ** 2))  # the authors' vector2scalar


def test_vector_conv_matches_reference_up_to_the_rotation_direction():
    """Theirs rotates the filter by -angle_i; ours by +angle_i. Conjugating input and
    ``w_v`` maps one onto the other exactly; without it the outputs differ."""
    conv = SEVFConv(4, 5, 5)
    u_in, v_in = T("lift_u"), T("lift_v")
    with torch.no_grad():
        conv.weight_u.copy_(T("vec_weight_u"))
        conv.weight_v.copy_(-T("vec_weight_v"))
        out = conv(field(u_in, -v_in))
    close(out, field(T("vec_u"), T("vec_v")))
    with torch.no_grad():
        conv.weight_v.copy_(T("vec_weight_v"))
        plain = conv(field(u_in, v_in))
    assert (plain - field(T("vec_u"), T("vec_v"))).abs().max() > 0.1 * T("vec_u").abs().max()


def test_vector_pool_and_batch_norm_match_reference():
    x = field(T("vec_u"), T("vec_v"))
    close(VectorMaxPool(2, ceil_mode=False)(x), field(T("pool_u"), T("pool_v")))
    torch.testing.assert_close(VectorMaxPool(2)(x)[..., :8, :8], field(T("pool_u"), T("pool_v")))
    bn = VectorBatchNorm(5).train()
    close(bn(x), field(T("bn_u"), T("bn_v")))
    close(bn.running_var, T("bn_running_var").flatten())


@pytest.mark.parametrize("variant,ref_name,c3", [("vector", "mnist_sevf_vector_28", 68),
                                                 ("scalar", "mnist_sevf_scalar_28", 95)])
def test_mnist_param_counts(variant, ref_name, c3):
    name = "sevf" if variant == "vector" else "sevf_scalar"
    ours = n_params(methods.create(name))
    # the global max-pool head reads C3 features, not the 2x2 pooled map's 4 * C3
    assert ours == int(REF[f"params_{ref_name}"]) - 3 * c3 * 256
    assert ours == {"vector": 423_251, "scalar": 421_465}[variant]


def test_stl10_param_counts():
    plain_wrn = int(REF["params_wrn_16_8"])  # the authors' plain WRN-16-8, 10,961,370
    assert n_params(methods.create("sevf_scalar", in_channels=3, config="stl10")) == plain_wrn
    # vector WRN (no published counterpart): lift 3 -> 11, then per group (c -> c') two blocks
    # of two vector convs (2 x 3 x 3 weights per pair of channels), a 1x1 shortcut c x c' and
    # four vector BN gains (c + 3 c'); head: BN gain + linear
    w = [11, 88, 176, 352]
    total = 3 * w[0] * 9 + w[3] + w[3] * 10 + 10
    for c, c2 in zip(w[:-1], w[1:]):
        total += 18 * (c * c2 + 3 * c2 * c2) + c * c2 + c + 3 * c2
    assert n_params(methods.create("sevf", in_channels=3, config="stl10")) == total == 10_277_750


# ---------------------------------------------------------------- models and registry


def test_registry_metadata():
    for name in ("sevf", "sevf_scalar"):
        e = methods.get_method(name)
        assert e.family == "scale-equivariant" and e.year == 2018 and "1807.11783" in e.paper
        assert e.reference.startswith("ISosnovik/sesn@deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac:")
        assert {"mnist", "stl10", "quick"} <= set(e.configs)
        r = recipe_for(name, "mnist")
        assert (r.optimizer, r.lr, r.milestones, r.epochs, r.batch_size) == (
            "adam", 1e-2, (20, 40), 60, 128)
        r = recipe_for(name, "stl10")
        assert (r.optimizer, r.lr, r.nesterov, r.weight_decay, r.milestones, r.gamma, r.epochs) == (
            "sgd", 0.1, True, 5e-4, (300, 400, 600, 800), 0.2, 1000)
    assert isinstance(methods.create("sevf"), SEVFMnist)
    assert methods.create("sevf").variant == "vector"
    assert methods.create("sevf_scalar").variant == "scalar"


@pytest.mark.parametrize("variant", ["vector", "scalar"])
def test_small_wrn_at_stl_sizes(variant):
    torch.manual_seed(0)
    m = SEVFWideResNet(variant=variant, widen=1).eval()
    with torch.no_grad():
        for size in (49, 96, 97):
            x = torch.randn(1, 3, size, size)
            assert m(x).shape == (1, 10)
            feats = m.features(x)
            assert all(f.dim() == 4 for f in feats.values())
            assert feats["proj"].shape[1] == (44 if variant == "vector" else 64)


def test_vector_model_trains_without_nan():
    torch.manual_seed(0)
    m = methods.create("sevf", config="quick").train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for size in (8, 20):
        x, y = torch.rand(8, 1, size, size), torch.randint(0, 10, (8,))
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
        opt.step()


@pytest.mark.parametrize("name", ["sevf", "sevf_scalar"])
def test_published_mnist_configs_accept_extreme_sizes(name):
    m = methods.create(name).eval()
    with torch.no_grad():
        for size in (8, 28):
            assert m(torch.rand(2, 1, size, size)).shape == (2, 10)
