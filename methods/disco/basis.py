"""DISCO's layer basis: Hermite functions at scale 1, carried to the other scales by the proxy basis.

The proxy basis (:mod:`methods.disco.fit`) holds, for each of the ``eff^2``
pixels of the scale-1 grid, its kernel at every scale: the impulse itself at
scale 1, the impulse dilated by ``s`` at an integer scale ``s``, a fitted kernel
at any other scale. Every kernel of a scale-1 function is then the same linear
combination of its pixels' kernels, so a layer's basis is

    basis[f', s] = sum_f W[f', f] proxy[f, s],      W = Hermite functions on the eff x eff grid,

divided, function by function, by its norm at the smallest scale (as SESN's
bases are; :func:`methods.sesn.basis.normalize_by_min_scale`). ``W`` fixes which
scale-1 kernels a layer can learn and in which coordinates: basis A is
invertible (every ``eff x eff`` kernel); the published MNIST basis B (``eff`` 7,
``max_order`` 4, three groups of 15 and four more functions) has rank 45 of 49
on the 7 x 7 grid, so the authors' layers -- and these, which reproduce them --
span a 45-dimensional space of kernels at every scale.

Two Hermite families are used, as in the paper's experiments (the functions are
SESN's, :func:`methods.sesn.basis.hermite_gaussian_1d`, listed in the order of the
authors' implementation so that coefficients correspond one to one):

* ``"A"`` -- orders ``0..eff-1`` in each axis at ``sigma = min_scale`` (STL-10);
* ``"B"`` -- total order ``<= max_order`` at ``min_scale``, ``min_scale / mult``,
  ... until ``eff^2`` functions are collected (MNIST).

:func:`hermite_basis` is the SESN counterpart of a DISCO basis: the same
scale-1 functions, rescaled as continuous functions (``sigma * s``) and sampled
at every scale. It is what DISCO improves on, and what the tests compare with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from scaleqbench.methods.disco.fit import check_scales
from scaleqbench.methods.sesn.basis import hermite_gaussian_1d, normalize_by_min_scale, sample_support

__all__ = ["disco_basis", "hermite_basis", "hermite_functions", "hermite_specs"]


def hermite_specs(kind: str, effective_size: int, sigma: float, mult: float = 1.5,
                  max_order: int = 4) -> list[tuple[float, int, int]]:
    """``(sigma, row order, column order)`` of each of the ``eff^2`` functions, in the authors' order.

    The row order varies fastest: ``(0, 0), (1, 0), (2, 0), ...``.
    """
    kind = kind.upper()
    n_funcs = effective_size ** 2
    if kind == "A":
        return [(sigma, r, c) for c in range(effective_size) for r in range(effective_size)]
    if kind == "B":
        if mult <= 1:
            raise ValueError(f"basis B needs mult > 1, got {mult}")
        group = [(r, c) for c in range(max_order + 1) for r in range(max_order + 1 - c)]
        n_groups = math.ceil(n_funcs / len(group))
        return [(sigma / mult ** g, r, c) for g in range(n_groups) for r, c in group][:n_funcs]
    raise ValueError(f"unknown DISCO Hermite basis {kind!r}; use 'A' or 'B'")


def hermite_functions(kind: str, grid_size: int, effective_size: int, sigma: float,
                      mult: float = 1.5, max_order: int = 4) -> torch.Tensor:
    """``(eff^2, grid, grid)`` float64: the Hermite functions sampled on a centred odd grid."""
    r = grid_size // 2
    grid = torch.arange(-r, r + 1, dtype=torch.float64)
    funcs = [hermite_gaussian_1d(grid, s, nr)[:, None] * hermite_gaussian_1d(grid, s, nc)[None, :]
             for s, nr, nc in hermite_specs(kind, effective_size, sigma, mult, max_order)]
    return torch.stack(funcs)


def disco_basis(proxy: torch.Tensor, kind: str, min_scale: float, mult: float = 1.5,
                max_order: int = 4) -> torch.Tensor:
    """The layer basis ``(F, S, k, k)`` (float64) from a proxy basis ``(F, S, k, k)`` (module docstring)."""
    n_funcs = proxy.shape[0]
    eff = math.isqrt(n_funcs)
    if proxy.dim() != 4 or eff * eff != n_funcs:
        raise ValueError(f"a DISCO proxy basis is (eff^2, S, k, k), got {tuple(proxy.shape)}")
    w = hermite_functions(kind, eff, eff, min_scale, mult, max_order).reshape(n_funcs, n_funcs)
    mixed = w @ proxy.to(torch.float64).reshape(n_funcs, -1)
    return normalize_by_min_scale(mixed.reshape(proxy.shape))


def hermite_basis(kind: str, size: int, effective_size: int, scales: Sequence[float],
                  min_scale: float, mult: float = 1.5, max_order: int = 4) -> torch.Tensor:
    """SESN's way to the other scales: the same Hermite functions at ``sigma * s`` on a grid
    proportional to ``s`` (:func:`methods.sesn.basis.sample_support`), ``(F, S, k, k)`` float64."""
    scales = check_scales(size, effective_size, scales)
    per_scale = []
    for s in scales:
        support = sample_support(size, s, scales[-1])
        f = hermite_functions(kind, support, effective_size, min_scale * s, mult, max_order)
        p = (size - support) // 2
        per_scale.append(F.pad(f, (p, p, p, p)))
    return normalize_by_min_scale(torch.stack(per_scale, 1))
