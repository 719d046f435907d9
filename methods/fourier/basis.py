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

__all__ = [
    "band_mean_square", "band_to_real", "map_spectrum", "real_analysis", "real_synthesis",
    "real_to_band", "ring_count", "ring_schedule", "spectrum_map",
]


def ring_count(n: int) -> int:
    """``J(n)``: the highest ring a band-limited map of size ``n`` holds."""
    return (n - 1) // 2


def ring_schedule(n: int, base: int, pool: int) -> list[tuple[int, int, int]]:
    """The evaluations of a ring nonlinearity (defined in :mod:`methods.fourier.nonlinearity`)
    with minimum size ``base`` at input size ``n``: ``(grid, band, output ring)`` each.

    The first entry is the base evaluation (its "ring" is the highest base ring,
    all rings up to it are taken from it); each further entry yields one ring.
    """
    m, mb = n // pool, base // pool
    if mb < 1 or n < base:
        raise ValueError(f"input size {n} is below the layer's minimum size {base}")
    out = [(pool * mb, ring_count(pool * mb), ring_count(mb))]
    for j in range(ring_count(mb) + 1, ring_count(m) + 1):
        g = pool * (2 * j + 1)
        out.append((g, ring_count(g), j))
    return out


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


@functools.lru_cache(maxsize=1024)
def _band_mean_square_cached(bands: tuple[int, ...], width: int, dtype: torch.dtype,
                             device: str) -> torch.Tensor:
    w = torch.zeros(len(bands), width, dtype=torch.float64)
    for r, band in enumerate(bands):
        w[r, 0] = 1.0
        w[r, 1:2 * band + 1] = 0.5
    return w.to(dtype=dtype, device=device)


def band_mean_square(bands: list[int], width: int, dtype: torch.dtype = torch.float64,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``(len(bands), width)``: the mean square over a grid of each real basis function,
    cut to each band.

    The real basis is orthogonal on every grid that resolves it, and over such a grid the
    constant has mean square 1 and each cosine and sine 1/2, whatever the grid size. So by
    Parseval the mean square of the map synthesised from coefficients ``X`` within band
    ``b`` is ``sum_{a, c} X[a, c]^2 w[a] w[c]`` with ``w`` this row (0 beyond ``2b``).
    Made once per bands, width, dtype and device (the network's head asks for it at every
    forward), so it is shared: never write into it.
    """
    return _band_mean_square_cached(tuple(bands), width, dtype, str(torch.device(device)))


# --- spectra as the network's working representation -------------------------------------
# Between layers the Fourier network keeps every map as its real spectrum, a tensor
# ``(K, K, B, C)`` (``K = 2 J(n) + 1``, rows: the y axis, columns: the x axis, in the real
# basis above), frequency-major so that per-frequency channel mixing is a batched GEMM and
# no layer has to go back to the pixel grid.

def map_spectrum(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, n, n) -> (K, K, B, C)``: the real spectrum of the band ``|k| <= J(n)`` of ``x``.

    Exact on band-limited maps; otherwise the DFT projection (an even size's Nyquist
    row and column are dropped). Two 2-D GEMMs and one transpose copy.
    """
    bsz, ch, n, _ = x.shape
    an = real_analysis(n, ring_count(n), x.dtype, x.device)  # (K, n)
    k = an.shape[0]
    t = (x.reshape(bsz * ch * n, n) @ an.T).view(bsz * ch, n, k)  # [i, u, b]
    t = t.permute(1, 2, 0).reshape(n, k * bsz * ch)  # [u, (b, i)]
    return (an @ t).view(k, k, bsz, ch)


def spectrum_map(spec: torch.Tensor, n: int) -> torch.Tensor:
    """``(K, K, B, C) -> (B, C, n, n)``: synthesise a real spectrum on the ``n x n`` grid."""
    k, _, bsz, ch = spec.shape
    syn = real_synthesis(n, (k - 1) // 2, spec.dtype, spec.device)  # (n, K)
    t = (syn @ spec.reshape(k, k * bsz * ch)).view(n, k, bsz * ch)  # [u, b, i]
    t = t.permute(2, 0, 1).reshape(bsz * ch * n, k)
    return (t @ syn.T).view(bsz, ch, n, n)


def _parts(spec: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split axis ``dim`` of a real spectrum into (constant, cosines, sines), frequency 1..J.

    ``split`` and ``unbind`` only (views): their backward is a ``cat``/``stack``, whereas a
    strided slice's backward zero-fills a full-size gradient every time.
    """
    j = (spec.shape[dim] - 1) // 2
    const, rest = spec.split([1, 2 * j], dim)
    cos, sin = rest.unflatten(dim, (j, 2)).unbind(dim + 1)
    return const.squeeze(dim), cos, sin


def _interleave(const: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse of :func:`_parts`: ``[const, cos_1, sin_1, cos_2, sin_2, ...]`` along ``dim``."""
    return torch.cat([const.unsqueeze(dim), torch.stack([cos, sin], dim + 1).flatten(dim, dim + 1)],
                     dim)


def real_to_band(spec: torch.Tensor) -> torch.Tensor:
    """``(K, K, ...)`` real spectrum -> ``(K, J+1, ...)`` complex half spectrum.

    The ``k_x >= 0`` half of the DFT (``norm="forward"``), ``k_y`` in FFT order
    (``0..J, -J..-1``), exactly what ``rfft2`` gives for these frequencies: with
    ``cos = (e+ + e-)/2`` and ``sin = (e+ - e-)/2i`` per axis, coefficient
    ``(cc, cs, sc, ss)`` of frequency ``(f_y, f_x)`` gives ``((cc-ss) - i(cs+sc))/4`` at
    ``(f_y, f_x)`` and ``((cc+ss) + i(sc-cs))/4`` at ``(-f_y, f_x)``.
    """
    row0, cos, sin = _parts(spec, 0)  # rows: f_y = 0, then f_y = 1..J as cos / sin
    r00, r0c, r0s = _parts(row0, 0)
    c0, cc, cs = _parts(cos, 1)
    s0, sc, ss = _parts(sin, 1)
    re = torch.cat([
        torch.cat([r00[None], r0c / 2])[None],
        torch.cat([c0[:, None] / 2, (cc - ss) / 4], 1),
        torch.cat([c0[:, None] / 2, (cc + ss) / 4], 1).flip(0)])
    im = torch.cat([
        torch.cat([torch.zeros_like(r00)[None], -r0s / 2])[None],
        torch.cat([-s0[:, None] / 2, -(cs + sc) / 4], 1),
        torch.cat([s0[:, None] / 2, (sc - cs) / 4], 1).flip(0)])
    return torch.complex(re, im)


def band_to_real(band: torch.Tensor) -> torch.Tensor:
    """``(K, J+1, ...)`` complex half spectrum -> ``(K, K, ...)`` real spectrum, as ``irfft2``.

    The real spectrum of ``irfft2`` of the half spectrum (zero outside the band):
    ``irfft2`` reads ``Re`` of the ``k_x = 0`` column after the inverse DFT over
    ``k_y`` and doubles the real part of every other column, so a half spectrum
    that is not Hermitian on ``k_x = 0`` is symmetrised there, as ``irfft2`` does.
    """
    j = (band.shape[0] - 1) // 2
    row0, pos, neg = band.split([1, j, j])  # f_y = 0, +1..+J, -J..-1
    row0, neg = row0[0], neg.flip(0)
    s, d = pos + neg, pos - neg
    (s0, s_), (d0, d_) = s.split([1, j], 1), d.split([1, j], 1)
    out_row0 = _interleave(row0[0].real, 2 * row0[1:].real, -2 * row0[1:].imag, 0)
    out_cos = _interleave(s0[:, 0].real, 2 * s_.real, -2 * s_.imag, 1)  # rows cos f_y
    out_sin = _interleave(-d0[:, 0].imag, -2 * d_.imag, -2 * d_.real, 1)  # rows sin f_y
    return _interleave(out_row0, out_cos, out_sin, 0)
