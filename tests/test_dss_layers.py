"""DSS layers: the scale convolution's definition and its exact equivariance to 2x down-sampling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleqbench.methods.common import MaxOverScales
from scaleqbench.methods.dss.layers import (
    DilatedSpatialMaxPool,
    ScaleBatchNorm,
    ScaleConv,
    dilated_conv2d,
    fold_scales,
)
from scaleqbench.methods.dss.models import VectorBlock


def _down(f: torch.Tensor) -> torch.Tensor:
    """The 2x down-sampling action on a scale-space: (L f)(s, x) = f(s + 1, 2 x)."""
    return f[:, :, 1:, ::2, ::2]


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 23), w=st.integers(1, 23), d=st.sampled_from([1, 2, 4]),
       k=st.sampled_from([1, 3, 7]), seed=st.integers(0, 2 ** 16))
def test_space_to_batch_equals_dilated_conv(h, w, d, k, seed):
    # float32: CPU float64 convolutions are slow, and this is an identity between two
    # evaluations of the same sums (only the summation order may differ)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, h, w, generator=g)
    wt = torch.randn(4, 3, k, k, generator=g)
    b = torch.randn(4, generator=g)
    ref = F.conv2d(x, wt, b, padding=d * (k // 2), dilation=d)
    torch.testing.assert_close(dilated_conv2d(x, wt, b, d), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 2])
def test_scale_conv_matches_its_definition(depth):
    """out(s, x) = sum_d sum_y f(s + d, x + 2**s y) w(d, y), written out per scale."""
    torch.manual_seed(0)
    conv = ScaleConv(3, 5, 3, n_scales=3, depth=depth).double()
    f = torch.randn(2, 3, 3, 12, 12, dtype=torch.float64)
    out = conv(f)
    assert out.shape == (2, 5, 3 - depth + 1, 12, 12)
    for s in range(3 - depth + 1):
        ref = sum(F.conv2d(f[:, :, s + d], conv.weight[:, :, d], padding=2 ** s, dilation=2 ** s)
                  for d in range(depth))
        torch.testing.assert_close(out[:, :, s], ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(size=st.integers(12, 30), n_scales=st.integers(2, 4), depth=st.integers(1, 2),
       k=st.sampled_from([3, 7]), seed=st.integers(0, 2 ** 16))
def test_scale_conv_is_exactly_equivariant_to_2x_downsampling(size, n_scales, depth, k, seed):
    """conv(L f)(s) = L conv(f)(s): a shift along scale plus 2x sub-sampling, exactly.

    Checked on interior pixels (away from the zero-padded border); with the
    integer dilations of base 2 it in fact holds on every pixel, checked too.
    """
    depth = min(depth, n_scales - 1)
    g = torch.Generator().manual_seed(seed)
    conv = ScaleConv(2, 3, k, n_scales=n_scales, depth=depth).double()
    conv_small = ScaleConv(2, 3, k, n_scales=n_scales - 1, depth=depth).double()
    conv_small.weight = conv.weight  # the same layer, on a scale axis one shorter
    f = torch.randn(2, 2, n_scales, size, size, generator=g, dtype=torch.float64)
    lhs = conv_small(_down(f))
    rhs = _down(conv(f))
    assert lhs.shape == rhs.shape
    reach = (k // 2) * 2 ** (n_scales - 1)  # widest dilated half-kernel, in the small grid
    inner = slice(reach, -reach) if 2 * reach < lhs.shape[-1] else slice(None)
    torch.testing.assert_close(lhs[..., inner, inner], rhs[..., inner, inner], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10)


def test_plain_cnn_layer_is_not_equivariant_to_downsampling():
    """Control for the test above: without per-scale dilation the identity fails."""
    torch.manual_seed(1)
    f = torch.randn(1, 2, 2, 20, 20, dtype=torch.float64)
    w = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    plain = F.conv2d(f[:, :, 1, ::2, ::2], w, padding=3)
    target = F.conv2d(f[:, :, 1], w, padding=3)[..., ::2, ::2]
    assert (plain - target).abs().max() > 1e-2


def _eval_pair(c_in, c_out, pool, seed):
    """A vector block on 3 scales and the same block on 2 (for the down-sampled input)."""
    torch.manual_seed(seed)
    big = VectorBlock(c_in, c_out, 7, 3, 1, 2, pool=pool).double().eval()
    with torch.no_grad():  # non-trivial BN statistics, shared with the small copy
        big.bn.running_mean.uniform_(-0.5, 0.5)
        big.bn.running_var.uniform_(0.5, 2.0)
        big.bn.weight.uniform_(0.5, 1.5)
    small = VectorBlock(c_in, c_out, 7, 2, 1, 2, pool=pool).double().eval()
    small.load_state_dict(big.state_dict())
    return big, small


@pytest.mark.parametrize("pool", [False, True])
def test_vector_blocks_are_exactly_equivariant_in_eval_mode(pool):
    """BN (shared over scales, eval) and ReLU are pointwise and the max-pool of scale s is
    dilated by 2**s, so a stack of vector blocks keeps the exact equivariance of its
    convolutions, pooling included, on every pixel."""
    pairs = [_eval_pair(2, 4, pool, 2), _eval_pair(4, 3, pool, 3)]
    f = torch.randn(2, 2, 3, 24, 24, dtype=torch.float64)
    big_out, small_out = f, _down(f)
    for big, sm in pairs:
        big_out, small_out = big(big_out), sm(small_out)
    assert small_out.shape[-1] == (3 if pool else 12)
    torch.testing.assert_close(small_out, _down(big_out), rtol=1e-10, atol=1e-10)


def test_undilated_pooling_is_not_equivariant():
    """Control for the test above: a plain 2x2 window at every scale (SESN's MNIST
    re-implementation of DSS) breaks the identity."""
    big, small = _eval_pair(2, 4, True, 4)
    plain = DilatedSpatialMaxPool(2, base=1)  # dilation 1**s = 1 at every scale
    big.pool, small.pool = plain, plain
    f = torch.randn(2, 2, 3, 24, 24, dtype=torch.float64)
    err = (small(_down(f)) - _down(big(f))).abs().max()
    assert err > 1e-3


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 17), w=st.integers(1, 17), n_scales=st.integers(1, 3),
       base=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2 ** 16))
def test_spatial_max_pool_matches_its_definition(h, w, n_scales, base, seed):
    """out(s, q) = max over delta in {0,1}^2 of f(s, 2 q + base**s delta), taps past the
    border left out; ceil(H / 2) x ceil(W / 2) outputs."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(1, 2, n_scales, h, w, generator=g, dtype=torch.float64)
    out = DilatedSpatialMaxPool(2, base)(f)
    ho, wo = -(-h // 2), -(-w // 2)
    assert out.shape == (1, 2, n_scales, ho, wo)
    for s in range(n_scales):
        d = base ** s
        for i in range(ho):
            for j in range(wo):
                taps = [f[0, :, s, 2 * i + d * a, 2 * j + d * b]
                        for a in (0, 1) for b in (0, 1) if 2 * i + d * a < h and 2 * j + d * b < w]
                torch.testing.assert_close(out[0, :, s, i, j], torch.stack(taps).amax(0))
    # scale 0 is the plain ceil-mode pool of `cnn`
    ref = F.max_pool2d(f[:, :, 0], 2, ceil_mode=True)
    torch.testing.assert_close(out[:, :, 0], ref)


def test_scale_conv_validates_its_arguments():
    with pytest.raises(ValueError):
        ScaleConv(1, 1, 4, n_scales=2)
    with pytest.raises(ValueError):
        ScaleConv(1, 1, 3, n_scales=2, depth=3)
    with pytest.raises(ValueError):
        ScaleConv(1, 1, 3, n_scales=2, base=1.5)
    with pytest.raises(ValueError):
        ScaleConv(1, 1, 3, n_scales=2)(torch.zeros(1, 1, 3, 5, 5))


def test_delta_init_starts_near_identity():
    conv = ScaleConv(8, 8, 3, n_scales=2, init="delta")
    x = torch.randn(1, 8, 2, 9, 9)
    y = conv(x)
    assert (y - x).abs().max() < 0.5 * x.abs().max()


def test_pooling_bn_and_folding_shapes():
    x = torch.randn(2, 3, 2, 7, 7)
    pool = MaxOverScales(share_ties=True)
    assert pool(x).shape == (2, 3, 7, 7)
    torch.testing.assert_close(pool(x), torch.maximum(x[:, :, 0], x[:, :, 1]))
    assert DilatedSpatialMaxPool()(x).shape == (2, 3, 2, 4, 4)
    assert ScaleBatchNorm(3)(x).shape == x.shape
    folded = fold_scales(x)
    assert folded.shape == (2, 6, 7, 7)
    torch.testing.assert_close(folded[:, 2 * 1 + 1], x[:, 1, 1])
