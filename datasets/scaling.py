"""The scaling operators: the single source of truth for data, models and metrics.

Two operators act on image batches ``(..., H, W)`` with ``H == W``:

* :func:`fourier_resize` -- discrete, anti-aliased re-sampling by the ideal
  low-pass. A signal of size ``n`` is treated as band-limited: it holds the DFT
  coefficients with ``|k|_inf < n/2`` (an even size carries no Nyquist ring).
  Resizing to ``m`` keeps the coefficients with ``|k|_inf < min(n, m)/2`` with
  their amplitudes (``norm="forward"``) and synthesises them on the ``m x m``
  grid. Hence ``fourier_resize(fourier_resize(x, a), b) == fourier_resize(x, b)``
  for ``b <= a``: the operators form a semigroup, which is what "exact scale
  equivariance" is measured against.
* :func:`canvas_rescale` -- an object-scale change on a fixed canvas (bicubic
  zoom about the centre, zero fill), the operator of the SESN / MNIST-scale
  protocol.

:func:`to_canvas` is how an image smaller than the protocol's canvas reaches a
model (the protocol's *input policy*, :data:`INPUT_POLICIES`): ``native`` (as
it is, s x s), ``pad`` (zero-padded, centred, onto the N x N canvas:
:func:`pad_to_canvas`) or ``upsample`` (``fourier_resize`` back to N, which adds
no frequency). Training, evaluation and the metrics all call it, so a policy
means the same thing everywhere.

Implementation note: the ideal low-pass along one axis is a real ``m x n``
matrix (the kept frequencies come in conjugate pairs), so the 2-D operator is
``A x A^T``. Two small matmuls beat FFT + scatter at the sizes used here, are
differentiable, and run on any device; the matrices are cached per
``(n, m, dtype, device)``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

__all__ = [
    "INPUT_POLICIES",
    "band_limit",
    "canvas_rescale",
    "fourier_resize",
    "fourier_resize_fft",
    "fourier_zoom",
    "pad_to_canvas",
    "resize_matrix",
    "to_canvas",
]

#: how an image of size s < N reaches a model (see :func:`to_canvas`)
INPUT_POLICIES = ("native", "pad", "upsample")


def _check_size(size: int, what: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{what} must be a positive integer, got {size!r}")
    return size


#: elements of the (m, n, 2K+1) cosine table built at once (256 MB of float64); larger tables
#: are summed over slices of k, so that memory stays O(m n) (a 2000 -> 1000 matrix would
#: otherwise take 16 GB). Small tables keep the one-shot sum and so their exact values.
_TABLE_ELEMENTS = 2**25


@functools.lru_cache(maxsize=512)
def _resize_matrix_cpu64(n: int, m: int) -> torch.Tensor:
    # A[j, t] = (1/n) * sum_{|k| <= K} exp(2 pi i k (j/m - t/n)), K = (min(n, m) - 1) // 2.
    # The sum is symmetric in k, so it is the real cosine sum below.
    kmax = (min(n, m) - 1) // 2
    k = torch.arange(-kmax, kmax + 1, dtype=torch.float64)
    j = torch.arange(m, dtype=torch.float64)[:, None, None] / m
    t = torch.arange(n, dtype=torch.float64)[None, :, None] / n
    step = max(1, _TABLE_ELEMENTS // (m * n))
    if step >= k.numel():
        return torch.cos(2 * math.pi * k * (j - t)).sum(-1) / n
    total = torch.zeros(m, n, dtype=torch.float64)
    for lo in range(0, k.numel(), step):
        total += torch.cos(2 * math.pi * k[lo:lo + step] * (j - t)).sum(-1)
    return total / n


@functools.lru_cache(maxsize=512)
def _resize_matrix_cached(n: int, m: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return _resize_matrix_cpu64(n, m).to(dtype=dtype, device=device)


def resize_matrix(n: int, m: int, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """The real ``(m, n)`` matrix of the 1-D ideal low-pass re-sampling from n to m samples."""
    _check_size(n, "input size")
    _check_size(m, "output size")
    return _resize_matrix_cached(n, m, dtype, str(torch.device(device)))


def fourier_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Re-sample the last two (square) axes of ``x`` to ``size x size`` by the ideal low-pass.

    Equivariance: this *is* the discrete scaling operator ``D_size``; it commutes
    with integer translations (cyclic) and satisfies ``D_b D_a = D_b`` for ``b <= a``.
    Works for down- and up-scaling, odd and even sizes, any leading dimensions,
    real floating-point tensors; differentiable.
    """
    size = _check_size(size)
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"fourier_resize needs square images (..., n, n), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"fourier_resize needs a floating-point tensor, got {x.dtype}")
    n = x.shape[-1]
    a = resize_matrix(n, size, dtype=x.dtype, device=x.device)
    return a @ x @ a.transpose(0, 1)


def _zoom_matrix(n: int, factor: torch.Tensor) -> torch.Tensor:
    # Z[j, t] = (1/n) sum_{|k| <= K} cos(2 pi k (q_j - t/n)), q_j = 1/2 + (j/n - 1/2) / factor:
    # the trigonometric interpolant of fourier_resize's convention, sampled on a zoomed grid
    kmax = (n - 1) // 2
    dt = factor.dtype
    k = torch.arange(-kmax, kmax + 1, dtype=dt, device=factor.device)
    grid = torch.arange(n, dtype=dt, device=factor.device) / n
    q = 0.5 + (grid - 0.5) / factor
    return torch.cos(2 * math.pi * k * (q[:, None, None] - grid[None, :, None])).sum(-1) / n


def fourier_zoom(x: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """Zoom the content of ``x (..., n, n)`` by ``factor`` about the centre, on its own grid.

    The continuous counterpart of :func:`fourier_resize`'s notion of scale: ``x`` is
    read as the band-limited periodic function that ``fourier_resize`` interpolates
    (DFT coefficients ``|k|_inf < n/2``, sample ``j`` at ``j/n`` of the period), and
    that function is sampled at ``1/2 + (j/n - 1/2) / factor``: ``factor > 1``
    enlarges, ``factor < 1`` shrinks (the period wraps in). The centre ``1/2`` is the
    same point of the period at every size, so zooms of a map and of its
    ``fourier_resize`` agree to the extent that low-pass and zoom commute. Smooth in
    ``factor`` (a tensor may carry gradients or forward-mode tangents): the Lie
    derivative of the scale action (``bench.lie``) differentiates it at ``factor = 1``,
    where it is the identity on band-limited signals (an even size loses its Nyquist
    row, as in :func:`fourier_resize`).
    """
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"fourier_zoom needs square images (..., n, n), got shape {tuple(x.shape)}")
    factor = torch.as_tensor(factor, dtype=x.dtype, device=x.device)
    z = _zoom_matrix(x.shape[-1], factor)
    return z @ x @ z.transpose(0, 1)


def band_limit(x: torch.Tensor, cutoff: int) -> torch.Tensor:
    """Keep the frequencies of ``fourier_resize(x, cutoff)`` on x's own grid (an ideal low-pass)."""
    n = x.shape[-1]
    return fourier_resize(fourier_resize(x, min(cutoff, n)), n)


def fourier_resize_fft(x: torch.Tensor, size: int) -> torch.Tensor:
    """Plain FFT formulation of :func:`fourier_resize`, kept as an independent reference for tests."""
    size = _check_size(size)
    n = x.shape[-1]
    kmax = (min(n, size) - 1) // 2
    spec = torch.fft.fft2(x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64),
                          norm="forward")
    ks = torch.arange(-kmax, kmax + 1, device=x.device)
    src, dst = ks % n, ks % size
    kept = spec.index_select(-2, src).index_select(-1, src)
    out = torch.zeros(*x.shape[:-2], size, size, dtype=spec.dtype, device=x.device)
    out[..., dst[:, None], dst[None, :]] = kept
    return torch.fft.ifft2(out, norm="forward").real.to(x.dtype)


def canvas_rescale(x: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """Zoom the content of ``x (B, C, n, n)`` by ``factor`` about the centre, keeping the canvas.

    ``factor < 1`` shrinks the object (anti-aliased bicubic down-sampling to
    ``round(n * factor)`` pixels, pasted at the centre of a zero canvas);
    ``factor > 1`` enlarges it (bicubic up-sampling, centre crop). ``factor == 1``
    is the identity. ``factor`` may be a scalar or one value per sample.
    This is the MNIST-scale (SESN) protocol's operator; it is *not* band-limited.
    """
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"canvas_rescale needs (B, C, n, n), got shape {tuple(x.shape)}")
    factors = torch.as_tensor(factor, dtype=torch.float64).flatten()
    if factors.numel() == 1:
        factors = factors.expand(x.shape[0])
    if factors.numel() != x.shape[0]:
        raise ValueError(f"got {factors.numel()} factors for a batch of {x.shape[0]}")
    if not torch.all(factors > 0):
        raise ValueError("canvas_rescale factors must be positive")
    n = x.shape[-1]
    out = torch.empty_like(x)
    targets = torch.clamp(torch.round(factors * n), min=1).long()
    for m in torch.unique(targets).tolist():
        sel = (targets == m).nonzero().flatten().to(x.device)
        out[sel] = _zoom_to(x[sel], int(m), n)
    return out


def _zoom_to(x: torch.Tensor, m: int, n: int) -> torch.Tensor:
    if m == n:
        return x.clone()
    z = F.interpolate(x, size=(m, m), mode="bicubic", align_corners=False, antialias=m < n)
    if m < n:
        lo = (n - m) // 2
        return F.pad(z, (lo, n - m - lo, lo, n - m - lo))
    lo = (m - n) // 2
    return z[..., lo:lo + n, lo:lo + n]


def pad_to_canvas(x: torch.Tensor, canvas: int) -> torch.Tensor:
    """Zero-pad the last two (square) axes of ``x`` to ``canvas x canvas``, content centred.

    An odd margin puts the extra row and column after the image (bottom, right), the
    convention of :func:`canvas_rescale`, so a shrunk digit and a padded one sit alike.
    """
    canvas = _check_size(canvas, "canvas")
    s = x.shape[-1]
    if x.dim() < 2 or x.shape[-2] != s:
        raise ValueError(f"pad_to_canvas needs square images (..., n, n), got {tuple(x.shape)}")
    if s > canvas:
        raise ValueError(f"cannot pad a {s}x{s} image onto a smaller {canvas}x{canvas} canvas")
    lo = (canvas - s) // 2
    return F.pad(x, (lo, canvas - s - lo, lo, canvas - s - lo))


def to_canvas(x: torch.Tensor, policy: str, canvas: int) -> torch.Tensor:
    """A batch of size-s images as a model under input policy ``policy`` sees it.

    ``native``: ``x`` itself; ``pad``: :func:`pad_to_canvas`; ``upsample``:
    ``fourier_resize(x, canvas)``. An image already at the canvas size is returned
    as it is under every policy.
    """
    if policy not in INPUT_POLICIES:
        raise ValueError(f"unknown input policy {policy!r}; known: {', '.join(INPUT_POLICIES)}")
    if policy == "native" or x.shape[-1] == canvas:
        return x
    if policy == "pad":
        return pad_to_canvas(x, canvas)
    return fourier_resize(x, canvas)
