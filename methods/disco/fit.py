"""DISCO's equivariance loss and the fit of its basis (Sosnovik, Moskalev & Smeulders, BMVC 2021).

A DISCO layer uses one kernel per scale ``s_0 = 1 < s_1 < ... < s_{S-1}``. It is
exactly equivariant to rescaling by ``r = s_j / s_i`` when rescaling the input and
convolving with the kernel of scale ``s_i`` gives what convolving with the kernel
of scale ``s_j`` and then rescaling gives. The paper measures the failure of
this constraint on images ``x`` with bicubic down-scaling ``D_r``:

    L = sum_{i < j} || crop(D_r(x (*) k_j)) - crop(D_r(x) (*) k_i) ||_F ,   r = s_j / s_i,

where ``(*)`` is a cross-correlation with circular padding, the Frobenius norm runs
over images, basis functions and pixels together, and ``crop`` drops
``size // 2 + 1`` pixels on each side (the border, where circular padding on the
two grids disagrees). :func:`equivariance_loss` computes it.

The basis is first defined in "proxy" form: the ``F = eff^2`` functions at scale 1
are the unit impulses of an ``eff x eff`` grid; at an integer scale ``s`` they are
those impulses dilated by ``s`` -- an exact solution of the constraint; at every
other scale each function is a free ``size x size`` kernel, fitted by minimising
``L`` on random images (uniform i.i.d. pixels in ``[0, 1)``). A layer's basis is
a fixed linear map of the proxy (:mod:`methods.disco.basis`).

The fit (:func:`fit_proxy_basis`). Every residual is linear in the kernels:
with the ``size^2`` shifted copies of an image as columns,
``crop(D_r(x (*) k)) = U k`` and ``crop(D_r(x) (*) k) = V k``. So each pair's
squared norm is a quadratic form in the kernels given by the Gram matrix of
``[U, V]``, accumulated once over the images; ``L`` is a sum of square roots of
such forms, a convex function. It is minimised by iteratively re-weighted least
squares: with weights ``w_p = 1 / ||R_p||`` from the current solution, the
weighted sum of squares is minimised exactly (one linear solve shared by all
basis functions, which separate), and the weights are updated -- a monotone
descent to the minimiser that converges in a few dozen solves. The authors
minimise the same ``L`` with Adam over 40 epochs of 10,000 random 154 x 154
images from a random start; the minimiser is the same up to the sampling of the
images (see tests/fixtures/disco/SOURCE.md), at a small fraction of the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "FitOptions",
    "FitResult",
    "check_scales",
    "dilated_impulses",
    "equivariance_loss",
    "fit_proxy_basis",
    "pair_losses",
    "random_images",
]


@dataclass(frozen=True)
class FitOptions:
    """How the proxy basis is fitted; every field is part of the cache key.

    ``num_images`` random ``image_size x image_size`` images (uniform pixels, drawn
    from ``torch.Generator().manual_seed(seed)``); IRLS stops after ``max_iter``
    solves or when the loss changes by less than ``tol`` (relative).
    """

    # 32 images of 96 px: the MNIST basis then reaches the authors' held-out loss to 1e-4
    # (4 images: 3e-3, 16: 5e-4; the excess falls as 1 / num_images)
    num_images: int = 32
    image_size: int = 96
    seed: int = 0
    max_iter: int = 200
    tol: float = 1e-13

    def __post_init__(self) -> None:
        if self.num_images < 1 or self.image_size < 8 or self.max_iter < 1 or self.tol < 0:
            raise ValueError(f"invalid DISCO fit options {self}")


@dataclass(frozen=True)
class FitResult:
    """The fitted proxy basis ``(F, S, size, size)`` (float64) and the loss at each IRLS step.

    ``losses`` sums the pairs that involve a fitted scale, on the fit's images (a
    pair of two integer scales does not depend on the fit); empty when nothing is fitted.
    """

    proxy: torch.Tensor
    losses: tuple[float, ...]


def check_scales(size: int, effective_size: int, scales: Sequence[float]) -> list[float]:
    """Validate a DISCO configuration; the scales as floats.

    The scales are relative: the first is 1 (the impulses themselves) and they
    increase. An integer scale ``s`` needs ``size >= (eff - 1) * s + 1`` to hold
    its dilated impulses.
    """
    scales = [float(s) for s in scales]
    if size % 2 != 1 or effective_size % 2 != 1:
        raise ValueError(f"size and effective_size must be odd, got {size}, {effective_size}")
    if effective_size < 1 or effective_size > size:
        raise ValueError(f"effective_size must be in 1..{size}, got {effective_size}")
    if not scales or scales[0] != 1.0 or any(b <= a for a, b in zip(scales, scales[1:])):
        raise ValueError(f"DISCO scales must start at 1.0 and increase, got {scales}")
    for s in scales:
        if s.is_integer() and (effective_size - 1) * int(s) + 1 > size:
            raise ValueError(f"scale {s:g} dilates the {effective_size}x{effective_size} grid to "
                             f"{(effective_size - 1) * int(s) + 1} pixels; use size >= that")
    return scales


def dilated_impulses(size: int, effective_size: int, scale: int) -> torch.Tensor:
    """``(eff^2, size, size)``: the unit impulses of the ``eff x eff`` grid, spaced ``scale`` apart.

    Function ``a * eff + b`` is 1 at row ``c + (a - eff // 2) * scale`` and column
    ``c + (b - eff // 2) * scale`` of the centred grid (``c = size // 2``).
    """
    out = torch.zeros(effective_size ** 2, size, size, dtype=torch.float64)
    c, h = size // 2, effective_size // 2
    for a in range(effective_size):
        for b in range(effective_size):
            out[a * effective_size + b, c + (a - h) * scale, c + (b - h) * scale] = 1.0
    return out


def random_images(num: int, size: int, seed: int, dtype: torch.dtype = torch.float64
                  ) -> torch.Tensor:
    """``(num, 1, size, size)`` i.i.d. uniform pixels in ``[0, 1)`` from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(num, 1, size, size, generator=g, dtype=dtype)


def _downscale(x: torch.Tensor, ratio: float) -> torch.Tensor:
    # the paper's operator: bicubic, align_corners=False, the factor used as given
    return F.interpolate(x, scale_factor=1.0 / ratio, mode="bicubic", align_corners=False)


def _circular_corr(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``x (N, 1, H, W)`` cross-correlated with ``kernels (F, k, k)`` under circular padding."""
    p = kernels.shape[-1] // 2
    return F.conv2d(F.pad(x, [p] * 4, mode="circular"), kernels[:, None])


def _crop(x: torch.Tensor, c: int) -> torch.Tensor:
    return x[..., c:x.shape[-2] - c, c:x.shape[-1] - c]


def pair_losses(basis: torch.Tensor, images: torch.Tensor, scales: Sequence[float]
                ) -> dict[tuple[int, int], torch.Tensor]:
    """``{(i, j): ||crop(D_r(x (*) k_j)) - crop(D_r(x) (*) k_i)||_F}`` for every pair ``i < j``.

    ``basis`` is ``(F, S, k, k)``, ``images`` ``(N, C, H, W)`` (channels are
    treated as further images).
    """
    if basis.dim() != 4 or basis.shape[1] != len(scales):
        raise ValueError(f"basis must be (F, {len(scales)}, k, k), got {tuple(basis.shape)}")
    x = images.reshape(-1, 1, *images.shape[-2:]).to(basis.dtype)
    c = basis.shape[-1] // 2 + 1
    out = {}
    for i in range(len(scales)):
        for j in range(i + 1, len(scales)):
            r = scales[j] / scales[i]
            a = _crop(_downscale(_circular_corr(x, basis[:, j]), r), c)
            b = _crop(_circular_corr(_downscale(x, r), basis[:, i]), c)
            out[(i, j)] = (a - b).norm()
    return out


def equivariance_loss(basis: torch.Tensor, images: torch.Tensor, scales: Sequence[float]
                      ) -> torch.Tensor:
    """The paper's equivariance loss ``L`` of a basis ``(F, S, k, k)`` on ``images`` (module docstring)."""
    return torch.stack(list(pair_losses(basis, images, scales).values())).sum()


def _pair_grams(images: torch.Tensor, size: int, pairs: list[tuple[int, int]],
                scales: list[float]) -> dict[tuple[int, int], torch.Tensor]:
    """Per pair, the Gram matrix ``[U, V]^T [U, V]`` (``2 size^2`` square) summed over the images."""
    n, c = size * size, size // 2 + 1
    grams = {p: torch.zeros(2 * n, 2 * n, dtype=torch.float64) for p in pairs}
    for x in images.split(1):
        # channel o = a * size + b holds x shifted by (a, b): the correlation with impulse o
        shifted = _shifts(x, size)
        for i, j in pairs:
            r = scales[j] / scales[i]
            u = _crop(_downscale(shifted, r), c).reshape(n, -1)
            v = _crop(_shifts(_downscale(x, r), size), c).reshape(n, -1)
            uv = torch.cat([u, v])
            grams[(i, j)] += uv @ uv.T
    return grams


def _shifts(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(1, 1, H, W)`` -> ``(1, size^2, H, W)``: the circular correlation with every impulse."""
    p = size // 2
    h, w = x.shape[-2:]
    cols = F.unfold(F.pad(x, [p] * 4, mode="circular"), size)  # (1, size^2, H*W)
    return cols.reshape(1, size * size, h, w)


def _fixed_proxy(size: int, effective_size: int, scales: list[float]) -> torch.Tensor:
    """``(F, S, size, size)`` float64: the dilated impulses at every integer scale, zeros at the
    scales to be fitted."""
    proxy = torch.zeros(effective_size ** 2, len(scales), size, size, dtype=torch.float64)
    for j, s in enumerate(scales):
        if s.is_integer():
            proxy[:, j] = dilated_impulses(size, effective_size, int(s))
    return proxy


def _normal_equations(grams: dict[tuple[int, int], torch.Tensor],
                      weights: dict[tuple[int, int], float], slot: dict[int, int],
                      flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted least-squares system ``h sol = rhs`` of one IRLS step.

    ``sum_p w_p ||U_p k_j - V_p k_i||^2`` over the pairs ``p = (i, j)``, as a quadratic in
    the fitted kernels (stacked in the order of ``slot``: scale -> block): each fitted side
    of a pair adds its Gram block to ``h``, a pair of two fitted scales couples them with
    ``-U^T V``, and a pair with one fixed side moves that side's known kernels ``flat`` to
    ``rhs`` (one column per basis function)."""
    n_funcs, n = flat.shape[0], flat.shape[2]
    h = torch.zeros(len(slot) * n, len(slot) * n, dtype=torch.float64)
    rhs = torch.zeros(len(slot) * n, n_funcs, dtype=torch.float64)
    for (i, j), w in weights.items():
        g = grams[(i, j)]
        uu, uv, vv = g[:n, :n], g[:n, n:], g[n:, n:]
        bj = slot[j] * n if j in slot else None
        bi = slot[i] * n if i in slot else None
        if bj is not None:
            h[bj:bj + n, bj:bj + n] += w * uu
        if bi is not None:
            h[bi:bi + n, bi:bi + n] += w * vv
        if bj is not None and bi is not None:
            h[bj:bj + n, bi:bi + n] -= w * uv
            h[bi:bi + n, bj:bj + n] -= w * uv.T
        elif bj is not None:
            rhs[bj:bj + n] += w * (uv @ flat[:, i].T)
        else:
            rhs[bi:bi + n] += w * (uv.T @ flat[:, j].T)
    return h, rhs


def _pair_squares(grams: dict[tuple[int, int], torch.Tensor], flat: torch.Tensor
                  ) -> dict[tuple[int, int], float]:
    """Each pair's squared residual norm ``z^T G z``, ``z = [k_j; -k_i]`` (clamped at 0)."""
    out = {}
    for (i, j), g in grams.items():
        z = torch.cat([flat[:, j], -flat[:, i]], 1)  # (F, 2n): residual = [U, V] z
        out[(i, j)] = max(float(torch.einsum("fa,ab,fb->", z, g, z)), 0.0)
    return out


def _irls_weights(sq: dict[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    """The next IRLS weights ``1 / ||R_p||``; a vanishing residual would give an infinite
    weight, so residuals are floored at ``1e-12`` of the largest (that pair is solved)."""
    floor = 1e-12 * max(max(sq.values()), 1e-300)
    return {p: 1.0 / math.sqrt(max(v, floor)) for p, v in sq.items()}


def fit_proxy_basis(size: int, effective_size: int, scales: Sequence[float],
                    options: FitOptions = FitOptions()) -> FitResult:
    """Fit DISCO's proxy basis ``(eff^2, S, size, size)`` (float64) for one configuration.

    Integer scales hold dilated impulses (exact, not fitted); the other scales
    minimise :func:`equivariance_loss` on ``options.num_images`` random images by
    iteratively re-weighted least squares (module docstring).
    Deterministic: the same arguments give a bit-identical result.
    """
    scales = check_scales(size, effective_size, scales)
    proxy = _fixed_proxy(size, effective_size, scales)
    free = [j for j, s in enumerate(scales) if not s.is_integer()]
    if not free:
        return FitResult(proxy, ())
    pairs = [(i, j) for i in range(len(scales)) for j in range(i + 1, len(scales))
             if i in free or j in free]
    images = random_images(options.num_images, options.image_size, options.seed)
    grams = _pair_grams(images, size, pairs, scales)
    slot = {j: k for k, j in enumerate(free)}
    n = size * size
    flat = proxy.reshape(proxy.shape[0], len(scales), n)  # a view: solving fills the proxy
    weights = {p: 1.0 for p in pairs}  # the first solve is plain least squares
    losses: list[float] = []
    for _ in range(options.max_iter):
        sol = torch.linalg.solve(*_normal_equations(grams, weights, slot, flat))  # (|free| n, F)
        for j, k in slot.items():
            flat[:, j] = sol[k * n:(k + 1) * n].T
        sq = _pair_squares(grams, flat)
        losses.append(sum(math.sqrt(v) for v in sq.values()))
        if len(losses) > 1 and abs(losses[-2] - losses[-1]) <= options.tol * losses[-1]:
            break
        weights = _irls_weights(sq)
    return FitResult(proxy, tuple(losses))
