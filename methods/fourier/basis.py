"""Real Fourier bases and ring bookkeeping shared by the Fourier layers.

A band-limited map of size ``n`` holds the DFT coefficients with ``|k|_inf < n/2``
(rings ``j = 0 .. J(n)``, ``J(n) = (n - 1) // 2``; an even size carries no
Nyquist ring), exactly what :func:`datasets.scaling.fourier_resize` produces.

We represent such a map by its *real* 1-D basis per axis, ordered by frequency:
index ``0`` is the constant, ``2k - 1`` is ``cos(2 pi k u / m)`` and ``2k`` is
``sin(2 pi k u / m)``. The 2-D basis is the tensor product, so the coefficient
``(a, b)`` belongs to frequencies ``(+-k(a), +-k(b))`` and hence to ring
``max(k(a), k(b))``: ring ``j`` is rows ``{2j-1, 2j}`` x columns ``<= 2j`` plus
rows ``<= 2j-2`` x columns ``{2j-1, 2j}``, and "rings ``<= j``" is the leading
``(2j+1) x (2j+1)`` block. Everything is real, so synthesis, analysis and ring
extraction are plain real matrix products (no complex arithmetic, no scatter).
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["band_mean_square", "real_analysis", "real_synthesis", "ring_count"]


def ring_count(n: int) -> int:
    """``J(n)``: the highest ring a band-limited map of size ``n`` holds."""
    return (n - 1) // 2


@functools.lru_cache(maxsize=1024)
def _synthesis64(m: int, k: int) -> torch.Tensor:
    u = torch.arange(m, dtype=torch.float64)[:, None]
    freq = torch.arange(1, k + 1, dtype=torch.float64)[None, :]
    ang = 2 * math.pi * u * freq / m
    out = torch.empty(m, 2 * k + 1, dtype=torch.float64)
    out[:, 0] = 1.0
    out[:, 1::2] = torch.cos(ang)
    out[:, 2::2] = torch.sin(ang)
    return out


@functools.lru_cache(maxsize=1024)
def _synthesis_cached(m: int, k: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return _synthesis64(m, k).to(dtype=dtype, device=device)


def real_synthesis(m: int, k: int, dtype: torch.dtype = torch.float64,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """``(m, 2k+1)``: evaluate a real trigonometric polynomial of degree ``k`` on ``m`` points."""
    return _synthesis_cached(m, k, dtype, str(torch.device(device)))


@functools.lru_cache(maxsize=1024)
def _analysis_cached(m: int, k: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    if 2 * k >= m:
        raise ValueError(f"a grid of {m} points resolves frequencies < {m / 2}, not {k}")
    a = _synthesis64(m, k).T.clone()
    a[0] /= m
    a[1:] *= 2.0 / m
    return a.to(dtype=dtype, device=device)


def real_analysis(m: int, k: int, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """``(2k+1, m)``: real DFT coefficients up to frequency ``k < m/2`` of ``m`` samples.

    Exact inverse of :func:`real_synthesis` on signals band-limited to ``k``; for
    an even ``m`` the Nyquist component is orthogonal to every row, so it is ignored.
    """
    return _analysis_cached(m, k, dtype, str(torch.device(device)))


def band_mean_square(bands: list[int], width: int, dtype: torch.dtype = torch.float64,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``(len(bands), width)``: the mean square over a grid of each real basis function,
    cut to each band.

    The real basis is orthogonal on every grid that resolves it, and over such a grid the
    constant has mean square 1 and each cosine and sine 1/2, whatever the grid size. So by
    Parseval the mean square of the map synthesised from coefficients ``X`` within band
    ``b`` is ``sum_{a, c} X[a, c]^2 w[a] w[c]`` with ``w`` this row (0 beyond ``2b``).
    """
    w = torch.zeros(len(bands), width, dtype=torch.float64)
    for r, band in enumerate(bands):
        w[r, 0] = 1.0
        w[r, 1:2 * band + 1] = 0.5
    return w.to(dtype=dtype, device=device)
