"""SESN layers: cropped convolution = full kernel, and numerical scale equivariance.

The equivariance tests compare a smooth image ``g`` sampled at unit spacing
with the same content dilated by 2 (sampled on a grid twice as fine, so that
every second pixel of the big image is a pixel of the small one). A layer with
scales ``(sigma, 2 sigma, ...)`` must then give ``out_big[s + 1][2x] ==
out_small[s][x]``: the dilation becomes a shift by one along the scale axis.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleqbench.methods.common import MaxOverScales
from scaleqbench.methods.sesn.layers import (
    ScaleBatchNorm,
    SESConv1x1,
    SESConvHH,
    SESLift,
    SpatialMaxPoolPerScale,
)


def blob_pair(n_small: int, seed: int, channels: int = 1, n_blobs: int = 6
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random Gaussian blobs (width 1.5-3 px): ``small`` on n, ``big`` (dilated by 2) on 2n-1."""
    g = torch.Generator().manual_seed(seed)

    def render(n: int, t: float, centres, widths, amps) -> torch.Tensor:
        c = (n - 1) / 2
        y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64) - c,
                              torch.arange(n, dtype=torch.float64) - c, indexing="ij")
        img = torch.zeros(n, n, dtype=torch.float64)
        for (cy, cx), w, a in zip(centres, widths, amps):
            img += a * torch.exp(-((y / t - cy) ** 2 + (x / t - cx) ** 2) / (2 * w ** 2))
        return img

    smalls, bigs = [], []
    for _ in range(channels):
        centres = ((torch.rand(n_blobs, 2, generator=g, dtype=torch.float64) - 0.5)
                   * n_small * 0.6).tolist()
        widths = (1.5 + 1.5 * torch.rand(n_blobs, generator=g, dtype=torch.float64)).tolist()
        amps = torch.randn(n_blobs, generator=g, dtype=torch.float64).tolist()
        smalls.append(render(n_small, 1.0, centres, widths, amps))
        bigs.append(render(2 * n_small - 1, 2.0, centres, widths, amps))
    return torch.stack(smalls)[None], torch.stack(bigs)[None]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@settings(max_examples=6, deadline=None)
@given(stride=st.sampled_from([1, 2]), size=st.integers(5, 17), basis=st.sampled_from("AB"))
def test_lift_cropping_equals_full_kernel(stride, size, basis):
    torch.manual_seed(size)
    lift = SESLift(2, 3, 13, 7 if basis == "B" else 3, (1.5, 2.6, 4.5), basis=basis,
                   stride=stride)
    x = torch.randn(2, 2, size, size)
    kernels = lift.kernel.synthesize(lift.weight)  # (S, C', C, k, k), zero-padded
    ref = torch.stack([F.conv2d(x, kernels[s], lift.bias, stride=stride, padding=6)
                       for s in range(3)], 2)
    torch.testing.assert_close(lift(x), ref)


@settings(max_examples=6, deadline=None)
@given(stride=st.sampled_from([1, 2]), depth=st.integers(1, 3), size=st.integers(5, 15))
def test_scale_conv_cropping_equals_reference(stride, depth, size):
    """Output scale s = sum_d psi_{sigma_s}[d] * x[s + d], zeros beyond the last scale."""
    torch.manual_seed(depth * 100 + size)
    conv = SESConvHH(2, 3, 11, 5, (1.0, 1.7, 3.0), scale_depth=depth, basis="A", stride=stride)
    x = torch.randn(2, 2, 3, size, size)
    kernels = conv.kernel.synthesize(conv.weight)  # (S, C', C, D, k, k)
    outs = []
    for s in range(3):
        acc = conv.bias.view(1, -1, 1, 1)
        for d in range(depth):
            if s + d < 3:
                acc = acc + F.conv2d(x[:, :, s + d], kernels[s, :, :, d], stride=stride, padding=5)
        outs.append(acc)
    torch.testing.assert_close(conv(x), torch.stack(outs, 2))


def _lift_equivariance(basis: str, eff: int, kernel_size: int, scales,
                       n_funcs: int | None = None) -> tuple[float, float]:
    """(max relative error of the shifted comparison, min of the unshifted one) over 4 images;
    ``n_funcs``: only the first functions of the basis get a non-zero coefficient."""
    torch.manual_seed(0)
    lift = SESLift(1, 4, kernel_size, eff, scales, basis=basis, bias=False)
    if n_funcs is not None:
        with torch.no_grad():
            lift.weight[..., n_funcs:] = 0
    r = kernel_size // 2 + 1  # half the big kernel, in small-grid pixels: no zero padding seen
    errs, unshifted = [], []
    for seed in range(4):
        small, big = blob_pair(41 if kernel_size > 20 else 33, seed)
        ys, yb = lift(small)[0], lift(big)[0]
        ref = ys[:, 0, r:-r, r:-r]
        errs.append(rel(yb[:, 1, ::2, ::2][:, r:-r, r:-r], ref))
        unshifted.append(rel(yb[:, 0, ::2, ::2][:, r:-r, r:-r], ref))
    return max(errs), min(unshifted)


@pytest.mark.parametrize("basis,eff,n_funcs,tol", [
    ("A", 3, None, 5e-3),
    ("B", 7, 45, 1e-2),    # without the last group (sigma / mult^3)
    ("B", 7, None, 0.1),   # the whole published basis
])
def test_lift_is_scale_equivariant_with_wide_support(basis, eff, n_funcs, tol):
    """Support 8 sigma: what is left is sampling error. Measured: 8.2e-4 (A); basis B
    3.6e-3 on its first three groups (>= 0.9 px wide at sigma = 2), 7.0e-2 with the
    last group, which is 0.59 px wide and, as the authors' basis has it, holds
    orders 0..3 along one axis: an order-3 Hermite-Gaussian that narrow is not
    band-limited on the pixel grid, so it dilates poorly."""
    err, unshifted = _lift_equivariance(basis, eff, 33, (2.0, 4.0), n_funcs)
    assert err < tol
    assert unshifted > 0.2  # without the scale shift the maps really differ


def test_lift_equivariance_with_the_published_truncation():
    """Support ~ 4 sigma, as in the published configs (k 17 for sigma 4): the kernels
    are cut where the Gaussian is still e^-2 of its peak, and the cut is sampled
    once per pixel on the small image but twice on the big one -- an O(1 px)
    quadrature error of the truncated integral, on top of the aliasing of basis
    B's last group (above): measured 11 % (basis B, eff 7), against 32 % for the
    unshifted comparison."""
    err, unshifted = _lift_equivariance("B", 7, 17, (2.0, 4.0))
    assert err < 0.15
    assert unshifted > 2.5 * err


@pytest.mark.parametrize("depth", [1, 2])
def test_scale_conv_is_scale_equivariant(depth):
    """conv(L_2 g)[s + 1] = L_2 conv(g)[s], checked at s = 0 (scales 1.5, 3, 6; support 8 sigma)."""
    torch.manual_seed(depth)
    k, scales = 49, (1.5, 3.0, 6.0)
    conv = SESConvHH(2, 3, k, 3, scales, scale_depth=depth, basis="A", bias=True)
    # h_0..h_3: independent smooth 2-channel images; the big signal holds h_s(x / 2) at
    # scale s, the small one h_{s+1}(x): the big signal is the small one dilated and
    # shifted by one scale
    pairs = [blob_pair(41, 10 + i, channels=2) for i in range(4)]
    small = torch.stack([pairs[s + 1][0] for s in range(3)], 2)
    big = torch.stack([pairs[s][1] for s in range(3)], 2)
    ys, yb = conv(small)[0], conv(big)[0]
    r = 13  # big kernel of scale 2 (support 49) in small-grid pixels
    ref = ys[:, 0, r:-r, r:-r]
    assert rel(yb[:, 1, ::2, ::2][:, r:-r, r:-r], ref) < 5e-3
    assert rel(yb[:, 0, ::2, ::2][:, r:-r, r:-r], ref) > 0.2


def test_max_over_scales_is_invariant_to_scale_shifts_within_range():
    x = torch.randn(2, 3, 4, 5, 5)
    rolled = torch.roll(x, 1, dims=2)
    torch.testing.assert_close(MaxOverScales()(x), MaxOverScales()(rolled))
    assert MaxOverScales()(x).shape == (2, 3, 5, 5)


def test_scale_batchnorm_shares_statistics_over_scales():
    bn = ScaleBatchNorm(3)
    x = torch.randn(4, 3, 2, 5, 5) * 3 + 1
    ref = torch.nn.BatchNorm3d(3)(x)  # one statistic per channel over (B, S, H, W)
    torch.testing.assert_close(bn(x), ref)
    torch.testing.assert_close(bn.running_mean, torch.nn.BatchNorm3d(3).running_mean * 0.9
                               + 0.1 * x.mean((0, 2, 3, 4)))
    # a shift along the scale axis commutes with it (shared statistics)
    bn.eval()
    torch.testing.assert_close(bn(torch.roll(x, 1, 2)), torch.roll(bn(x), 1, 2))


def test_spatial_maxpool_and_1x1_act_per_scale():
    x = torch.randn(2, 3, 4, 7, 7)
    pooled = SpatialMaxPoolPerScale(2)(x)
    assert pooled.shape == (2, 3, 4, 4, 4)
    torch.testing.assert_close(pooled[:, :, 1], F.max_pool2d(x[:, :, 1], 2, ceil_mode=True))
    conv = SESConv1x1(3, 5, stride=2)
    y = conv(x)
    torch.testing.assert_close(y[:, :, 2], conv.conv(x[:, :, 2]))


def test_scale_conv_rejects_wrong_scale_axis():
    conv = SESConvHH(2, 3, 7, 3, (1.0, 2.0), basis="A")
    with pytest.raises(ValueError):
        conv(torch.randn(1, 2, 3, 8, 8))
