"""Hermite-Gaussian steerable bases of SESN (Sosnovik, Szmaja & Smeulders, ICLR 2020).

A SESN kernel is a fixed linear combination of basis functions ``psi_f`` that are
defined for every scale ``sigma`` of the layer as the same continuous function
dilated by ``sigma``:

    psi_{f, sigma}(x, y) = sigma^{-2} psi_f(x / sigma, y / sigma),
    psi_f(u, v)          = He_{n_f}(u) He_{m_f}(v) exp(-(u^2 + v^2) / 2),

with ``He_n`` the probabilists' Hermite polynomials. The factor ``sigma^{-2}``
(``1/sigma`` per separable factor) is what makes convolution commute with
dilation: ``(f o s^{-1}) * psi_sigma = (f * psi_{sigma/s}) o s^{-1}`` for an
image ``f`` dilated by ``s``. Sampling on the integer grid is the only
approximation (see :func:`sample_support`).

Axes: ``x`` is the column (last) axis of a kernel, ``y`` the row axis; a spec
``(sigma, n_x, n_y)`` is the function of order ``n_x`` along the columns and
``n_y`` along the rows. (The authors' code names the row axis ``x``.)

Two bases are used by the paper:

* **A** -- one Gaussian width per layer scale, orders ``0..eff-1`` along each
  axis (``eff^2`` functions); used on STL-10.
* **B** -- the orders with ``n_x + n_y <= max_order`` at ``sigma``, then the same
  group at ``sigma/mult, sigma/mult^2, ...`` until ``eff^2`` functions are
  collected; used on MNIST. The narrow groups give high frequencies without
  high polynomial orders. The last group is cut to what is left: for the
  published ``eff = 7, max_order = 4`` (49 = 3 x 15 + 4) it keeps
  ``n_x = 0, n_y = 0..3``, i.e. the first four functions of the group order below.

Function order (the index of a layer's coefficients), as in the authors'
reference implementation (ISosnovik/sesn, ``models/impl/ses_basis.py``), so
that coefficients trained there load here unchanged: ``n_x`` is the outer
loop and ``n_y`` the inner one -- basis A's function ``f`` is
``(n_x, n_y) = divmod(f, eff)``, and a basis-B group runs ``n_x = 0..max_order``,
``n_y = 0..max_order - n_x``.

At scale ``sigma_j`` the functions are sampled on an odd grid of
``floor(k * sigma_j / sigma_max)`` (made odd) pixels and zero-padded to ``k x k``,
so the support shrinks with the scale in the same proportion as the function.
Each function is divided by its L2 norm at the smallest scale (one constant per
function, the same at every scale), which keeps the relative ``sigma^{-2}``
amplitudes -- and with them the equivariance -- intact.

The result is a tensor ``(F, S, k, k)``: ``F`` functions, ``S`` scales. A layer's
learned weights are the ``F`` coefficients per (out, in) channel pair, so a
layer has the parameter count of a plain ``eff x eff`` convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "basis_a",
    "basis_b",
    "hermite_e",
    "hermite_gaussian_1d",
    "normalize_by_min_scale",
    "orders_b",
    "sample_support",
    "steerable_basis",
]


def hermite_e(n: int, x: torch.Tensor) -> torch.Tensor:
    """Probabilists' Hermite polynomial ``He_n(x)`` by the three-term recurrence.

    ``He_0 = 1``, ``He_1 = x``, ``He_{k+1} = x He_k - k He_{k-1}``.
    """
    if n < 0:
        raise ValueError(f"Hermite order must be >= 0, got {n}")
    prev, cur = torch.ones_like(x), x.clone()
    if n == 0:
        return prev
    for k in range(1, n):
        prev, cur = cur, x * cur - k * prev
    return cur


def hermite_gaussian_1d(x: torch.Tensor, sigma: float, order: int) -> torch.Tensor:
    """``sigma^{-1} He_order(x / sigma) exp(-x^2 / (2 sigma^2))``: one separable factor."""
    u = x / sigma
    return hermite_e(order, u) * torch.exp(-0.5 * u * u) / sigma


def sample_support(kernel_size: int, sigma: float, sigma_max: float) -> int:
    """Odd number of grid samples used at scale ``sigma``: ``floor(k sigma / sigma_max)``, made odd.

    Keeping the support proportional to ``sigma`` means every scale truncates
    its function at the same relative radius, so the truncation itself is
    scale-consistent. The floor is taken of the float product exactly as the
    authors' code does (no tolerance), so that both pick the same support on
    every configuration, even where rounding puts an exact ratio a hair low.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    n = int(math.floor(kernel_size * sigma / sigma_max))
    return max(1, min(kernel_size, n // 2 * 2 + 1))


def orders_b(max_order: int) -> list[tuple[int, int]]:
    """The ``(n_x, n_y)`` pairs with ``n_x + n_y <= max_order``: ``n_x`` outer, ``n_y`` inner.

    The authors' order (module docstring); it decides which functions survive
    the cut of basis B's last group.
    """
    return [(nx, ny) for nx in range(max_order + 1) for ny in range(max_order + 1 - nx)]


def _separable(support: int, specs: Sequence[tuple[float, int, int]]) -> torch.Tensor:
    """``(len(specs), support, support)``: the product ``h_{s,nx}(x) h_{s,ny}(y)`` for each spec.

    The first grid axis is ``y`` (rows), the second ``x`` (columns).
    """
    r = support // 2
    grid = torch.arange(-r, r + 1, dtype=torch.float64)
    funcs = []
    for sigma, nx, ny in specs:
        fx = hermite_gaussian_1d(grid, sigma, nx)
        fy = hermite_gaussian_1d(grid, sigma, ny)
        funcs.append(fy[:, None] * fx[None, :])
    return torch.stack(funcs)


def _pad_to(t: torch.Tensor, kernel_size: int) -> torch.Tensor:
    p = (kernel_size - t.shape[-1]) // 2
    return torch.nn.functional.pad(t, (p, p, p, p))


def _check_scales(scales: Sequence[float]) -> list[float]:
    scales = [float(s) for s in scales]
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be a non-empty list of positive numbers, got {scales}")
    if sorted(scales) != scales:
        raise ValueError(f"scales must be increasing (the scale axis is ordered), got {scales}")
    return scales


def specs_a(sigma: float, effective_size: int) -> list[tuple[float, int, int]]:
    """Basis A at one scale: ``(sigma, n_x, n_y)`` for orders ``0..eff-1`` in each axis,
    ``n_x`` outer and ``n_y`` inner (the authors' order)."""
    return [(sigma, nx, ny) for nx in range(effective_size) for ny in range(effective_size)]


def specs_b(sigma: float, effective_size: int, mult: float, max_order: int
            ) -> list[tuple[float, int, int]]:
    """Basis B at one scale: order groups at ``sigma, sigma/mult, ...`` cut at ``eff^2`` functions."""
    orders = orders_b(max_order)
    n_funcs = effective_size ** 2
    n_groups = math.ceil(n_funcs / len(orders))
    specs = [(sigma / mult ** g, nx, ny) for g in range(n_groups) for nx, ny in orders]
    return specs[:n_funcs]


def basis_a(kernel_size: int, scales: Sequence[float], effective_size: int) -> torch.Tensor:
    """Un-normalised basis A, ``(eff^2, S, k, k)`` float64."""
    scales = _check_scales(scales)
    per_scale = [
        _pad_to(_separable(sample_support(kernel_size, s, scales[-1]), specs_a(s, effective_size)),
                kernel_size)
        for s in scales]
    return torch.stack(per_scale, 1)


def basis_b(kernel_size: int, scales: Sequence[float], effective_size: int, mult: float = 1.5,
            max_order: int = 4) -> torch.Tensor:
    """Un-normalised basis B, ``(eff^2, S, k, k)`` float64."""
    scales = _check_scales(scales)
    if mult <= 1:
        raise ValueError(f"basis B needs mult > 1, got {mult}")
    per_scale = [
        _pad_to(_separable(sample_support(kernel_size, s, scales[-1]),
                           specs_b(s, effective_size, mult, max_order)), kernel_size)
        for s in scales]
    return torch.stack(per_scale, 1)


def normalize_by_min_scale(basis: torch.Tensor) -> torch.Tensor:
    """Divide each function (all its scales) by its L2 norm at the smallest scale."""
    norm = basis[:, :1].pow(2).sum((-2, -1), keepdim=True).sqrt()
    if torch.any(norm == 0):
        raise ValueError("a basis function vanishes on the grid of the smallest scale; "
                         "use a larger kernel_size or a smaller effective_size")
    return basis / norm


def steerable_basis(kind: str, kernel_size: int, scales: Sequence[float], effective_size: int,
                    mult: float = 1.5, max_order: int = 4) -> torch.Tensor:
    """The normalised SESN basis ``(F, S, k, k)`` (float64) of type ``"A"`` or ``"B"``."""
    if effective_size < 1 or effective_size > kernel_size:
        raise ValueError(f"effective_size must be in 1..kernel_size ({kernel_size}), "
                         f"got {effective_size}")
    kind = kind.upper()
    if kind == "A":
        raw = basis_a(kernel_size, scales, effective_size)
    elif kind == "B":
        raw = basis_b(kernel_size, scales, effective_size, mult, max_order)
    else:
        raise ValueError(f"unknown SESN basis {kind!r}; use 'A' or 'B'")
    return normalize_by_min_scale(raw)
