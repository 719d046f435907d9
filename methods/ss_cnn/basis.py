"""Log-radial harmonic filters: the scale-steerable basis of SS-CNN (Ghosh & Gupta, 2019).

In polar coordinates ``(r, phi)`` about the kernel's centre a basis filter is

    psi_{k, phi_0}(r, phi) = g_{phi_0}(phi) * r^{-1} * exp(i (k_eff log r + phase)),
    g_{phi_0}(phi) = exp(-d(phi, phi_0)^2 / (2 sigma_phi^2)),

``d`` the angular distance from ``phi`` to the line through the centre at angle
``phi_0`` (both directions, so ``g`` has period pi), on the disk ``r <= R``.
Its dilation by ``s`` is the same filter times a complex number,

    psi(x / s) = s exp(-i k_eff log s) psi(x),

so a filter built from these functions with complex coefficients ``c`` is
dilated by multiplying every ``c`` by ``exp(-i k_eff log s)``: that is the
*scale steerability* the layer uses. ``k_eff = 2 pi k / log(r_max)``, with
``r_max = sqrt(2) R`` the corner distance of the ``(2R+1)^2`` grid, puts ``k``
periods of the log-radial wave across it.

Sampling on the integer grid: ``r = 0`` would divide by zero, so the centre
pixel takes ``r = 1`` (``log r = 0``) and ``phi = 0``; real and imaginary parts
are normalised separately to unit L2 norm. Both are the authors' conventions
(SESN benchmark's ``models/impl/scale_steerable.py``), kept so that our filters
equal theirs. Sampled on small grids the identity above holds at every pixel
but the centre and the edge of the disk; ``tests/test_ss_cnn.py`` measures how
far the sampled filters are from steerable (at the published sizes 5...13 the
angular envelope is narrower than a pixel near the centre, and the steering
phase no longer improves how a filter sees zoomed images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["angular_distance", "effective_frequency", "log_radial_basis", "polar_grid"]


def polar_grid(size: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r, phi)`` of a ``size x size`` grid about its centre; row ``i`` is ``x = c - i``
    (upwards), column ``j`` is ``y = j - c``, ``phi = atan2(y, x)``; the centre has r = phi = 0."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"log-radial filters need an odd size, got {size}")
    c = (size - 1) / 2
    idx = torch.arange(size, dtype=dtype)
    x = (c - idx)[:, None].expand(size, size)
    y = (idx - c)[None, :].expand(size, size)
    return torch.sqrt(x * x + y * y), torch.atan2(y, x)


def angular_distance(phi: torch.Tensor, phi0: float) -> torch.Tensor:
    """Distance from the angle ``phi`` to the line at ``phi0`` (period pi), in ``[0, pi/2]``."""
    d = torch.remainder(phi - phi0, math.pi)
    return torch.minimum(d, math.pi - d)


def effective_frequency(k: float, size: int) -> float:
    """``2 pi k / log(r_max)``: ``k`` log-radial periods across a ``size x size`` grid."""
    if size < 3:
        raise ValueError(f"log-radial filters need size >= 3, got {size}")
    return 2 * math.pi * k / math.log(math.sqrt(2.0) * (size - 1) / 2)


def log_radial_basis(size: int, ks: Sequence[float], phis: Sequence[float], sigma_phi: float,
                     phase: float) -> tuple[torch.Tensor, torch.Tensor, tuple[float, ...]]:
    """The sampled basis ``(real, imag, k_eff)``: ``real``, ``imag`` of shape ``(K, F, size, size)``
    (float64, each function normalised to unit L2 norm), ``K = len(ks)`` frequencies,
    ``F = len(phis)`` orientations."""
    r, phi = polar_grid(size)
    centre = r == 0
    radius = (size - 1) // 2
    mask = (r <= radius).to(r.dtype)
    r = torch.where(centre, torch.ones_like(r), r)
    log_r = torch.log(r)
    k_eff = tuple(effective_frequency(k, size) for k in ks)
    reals, imags = [], []
    for kk in k_eff:
        re_k, im_k = [], []
        for phi0 in phis:
            envelope = torch.exp(-angular_distance(phi, phi0) ** 2 / (2 * sigma_phi ** 2)) / r
            arg = kk * log_r + phase
            re = envelope * torch.cos(arg) * mask
            im = envelope * torch.sin(arg) * mask
            re_k.append(re / re.norm())
            im_k.append(im / im.norm())
        reals.append(torch.stack(re_k))
        imags.append(torch.stack(im_k))
    return torch.stack(reals), torch.stack(imags), k_eff
