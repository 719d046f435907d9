"""SS-CNN's steerability of the basis and the max over kernel sizes.

Steerability, measured. The log-radial harmonic ``psi`` satisfies
``psi(x / s) = s exp(-i k_eff log s) psi(x)``. Sampled on the grid this holds exactly at
every pixel but two kinds: the centre (the basis takes ``r = 1`` there) and the pixels
near the edge of the support (the disk does not rescale with the function); counting
those, the steered filter differs from the rescaled one by 23-55 % (relative L2) for the
published size pairs. Seen by smooth images (the layer's responses), the filter steered
to size ``K_i`` matches the base filter on the picture zoomed by ``K_i / K_0`` to 5-28 %
when the kernels resolve the basis (sizes 21-61), against 25-66 % without the steering
phase. At the published MNIST sizes (5-13; the angular width pi/16 is under a pixel
near the centre) it does not: 11 -> 13 gives ~26 % steered and ~12-15 % unsteered.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleqbench.methods.ss_cnn.basis import log_radial_basis
from scaleqbench.methods.ss_cnn.layers import DEFAULT_PHIS, ScaleSteerableConv

from ss_cnn_support import MNIST_SIZES


# ---------------------------------------------------------------- steerability


def _psi(n: int, k_eff: float, phi0: float, s: float = 1.0) -> torch.Tensor:
    """The paper's harmonic rescaled by ``s``, ``psi(x / s)``, sampled on an ``n x n`` grid (no
    support mask, no centre): g(phi) (r/s)^-1 exp(i (k_eff log(r/s) - pi/4)). Written from the
    definition, independently of methods.ss_cnn.basis."""
    c = (n - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(n) - c, torch.arange(n) - c, indexing="ij")
    x, y = -rows, cols
    r = torch.sqrt(x ** 2 + y ** 2).clamp(min=1e-300) / s
    phi = torch.atan2(y, x)
    d = torch.remainder(phi - phi0, math.pi)
    g = torch.exp(-torch.minimum(d, math.pi - d) ** 2 / (2 * (math.pi / 16) ** 2))
    return g / r * torch.exp(1j * (k_eff * torch.log(r) - math.pi / 4))


def test_basis_samples_the_harmonics(float64):
    """Off the centre and inside the disk, each real / imaginary basis function is the
    definition's real / imaginary part up to its normalisation constant."""
    re, im, k_eff = log_radial_basis(13, (0.5, 1, 2), DEFAULT_PHIS, math.pi / 16, -math.pi / 4)
    r = torch.cdist(torch.stack(torch.meshgrid(torch.arange(13.), torch.arange(13.),
                                               indexing="ij"), -1).reshape(-1, 2),
                    torch.tensor([[6., 6.]])).reshape(13, 13)
    inside = (r > 0) & (r <= 6)
    for a, kk in enumerate(k_eff):
        for f, phi0 in enumerate(DEFAULT_PHIS):
            z = _psi(13, kk, phi0)
            for ours, part in ((re[a, f], z.real), (im[a, f], z.imag)):
                ratio = ours[inside] / part[inside]
                ok = part[inside].abs() > 1e-6 * part[inside].abs().max()
                torch.testing.assert_close(ratio[ok], ratio[ok].median().expand(int(ok.sum())))
            assert torch.all(re[a, f][~inside & (r > 0)] == 0)


@pytest.mark.parametrize("k_a,k_b", [(11, 13), (9, 11), (5, 13), (13, 5), (7, 9)])
def test_rescaled_harmonic_equals_the_steered_one(float64, k_a, k_b):
    """psi(x / s) = s exp(-i k_eff log s) psi(x) at every sampled pixel off the centre (to
    1e-12), s = k_b / k_a; the basis's support (disk of radius 6 on the 13 x 13 grid) does not
    rescale, which leaves the measured 23-55 % error of module docstring at its edge."""
    s = k_b / k_a
    for kk in (1.47, 2.94, 5.88):  # the published k_eff: 2 pi k / log(6 sqrt 2), k = 0.5, 1, 2
        for phi0 in DEFAULT_PHIS:
            rescaled, base = _psi(k_b, kk, phi0, s), _psi(k_b, kk, phi0)
            steered = s * complex(math.cos(kk * math.log(s)), -math.sin(kk * math.log(s))) * base
            centre = k_b // 2
            rescaled[centre, centre] = steered[centre, centre] = 0
            torch.testing.assert_close(steered, rescaled, rtol=1e-12, atol=1e-12)


def _blobs(n: int, t: float, seed: int, count: int, spread: float, widths) -> torch.Tensor:
    """Random Gaussian blobs drawn at spacing 1/t (the same pictures zoomed by t), (count, n, n)."""
    g = torch.Generator().manual_seed(seed)
    c = (n - 1) / 2
    y, x = torch.meshgrid(torch.arange(n) - c, torch.arange(n) - c, indexing="ij")
    out = torch.zeros(count, n, n)
    for b in range(count):
        for _ in range(6):
            cy, cx = ((torch.rand(2, generator=g) - 0.5) * spread).tolist()
            w = widths[0] + (widths[1] - widths[0]) * torch.rand(1, generator=g).item()
            a = torch.randn(1, generator=g).item()
            out[b] += a * torch.exp(-((y / t - cy) ** 2 + (x / t - cx) ** 2) / (2 * w * w))
    return out


def test_steered_filters_see_zoomed_images_alike(float64):
    """With kernels large enough to resolve the basis (base 21, sizes 21/27/31/41), the filter
    steered to size K_i responds to a picture zoomed by K_i / 21 as the base filter does to the
    original (times the zoom factor): within 30 %, and at least twice as close as the same
    coefficients without the steering phase (plain cropping of a larger grid)."""
    torch.manual_seed(0)
    sizes = (21, 27, 31, 41)
    layer = ScaleSteerableConv(1, 32, 21, sizes)
    base = _blobs(21, 1.0, 1, 60, 16, (3.0, 6.0))
    with torch.no_grad():
        r0 = torch.einsum("bxy,oxy->bo", base, layer.kernel(0)[:, 0])
        for i, k in enumerate(sizes[1:], 1):
            s = k / 21
            zoomed = _blobs(k, s, 1, 60, 16, (3.0, 6.0))
            steered = torch.einsum("bxy,oxy->bo", zoomed, layer.kernel(i)[:, 0])
            cos, sin = layer.steer_cos[i].clone(), layer.steer_sin[i].clone()
            layer.steer_cos[i], layer.steer_sin[i] = layer.steer_cos[0], layer.steer_sin[0]
            plain = torch.einsum("bxy,oxy->bo", zoomed, layer.kernel(i)[:, 0])
            layer.steer_cos[i], layer.steer_sin[i] = cos, sin
            e_steer = ((steered - s * r0).norm() / (s * r0).norm()).item()
            e_plain = ((plain - s * r0).norm() / (s * r0).norm()).item()
            assert e_steer < 0.3 and e_steer < e_plain / 2, (k, e_steer, e_plain)


# ---------------------------------------------------------------- the max over kernel sizes


# the float64 fixture only sets the default dtype: the same for every example
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stride=st.sampled_from([1, 2]), size=st.integers(9, 24), seed=st.integers(0, 2 ** 16))
def test_output_is_the_max_over_kernel_sizes(float64, stride, size, seed):
    """relu(max_i conv(x, W_i)) with W_i = Re sum c exp(-i k_eff log(K_i / K_0)) psi cropped to
    K_i, built here from the basis with complex arithmetic."""
    torch.manual_seed(seed)
    layer = ScaleSteerableConv(2, 3, 11, MNIST_SIZES, stride=stride)
    x = torch.randn(2, 2, size, size)
    re, im, k_eff = log_radial_basis(13, (0.5, 1, 2), DEFAULT_PHIS, math.pi / 16, -math.pi / 4)
    psi = torch.complex(re, im)  # (K, F, 13, 13)
    c = torch.complex(layer.weight_real, layer.weight_imag)  # (K, C', C, F)
    outs = []
    for size in MNIST_SIZES:
        turn = torch.exp(-1j * torch.tensor(k_eff) * math.log(size / 11))
        lo = (13 - size) // 2
        w = torch.einsum("koif,kfab->oiab", c * turn[:, None, None, None],
                         psi[..., lo:lo + size, lo:lo + size]).real
        outs.append(F.conv2d(x, w, stride=stride, padding=size // 2))
    stacked = torch.stack(outs)
    torch.testing.assert_close(layer(x), F.relu(stacked.amax(0)))
    torch.testing.assert_close(layer.responses(x), stacked)


def test_every_kernel_size_wins_somewhere():
    torch.manual_seed(0)
    layer = ScaleSteerableConv(2, 3, 11, MNIST_SIZES, relu=False)
    x = torch.randn(2, 2, 23, 23)
    with torch.no_grad():
        assert len(torch.unique(layer.responses(x).argmax(0))) == len(MNIST_SIZES)
        assert (layer(x) < 0).any()  # no ReLU asked, none applied


def test_rejects_bad_sizes():
    for sizes in ((4, 6), (7, 5), ()):
        with pytest.raises(ValueError):
            ScaleSteerableConv(1, 1, 5, sizes)
