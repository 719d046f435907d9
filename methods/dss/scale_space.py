"""Gaussian scale-spaces on the pixel grid, after Lindeberg (1990), as used by DSS.

The discrete analogue of the Gaussian is Lindeberg's kernel

    T(n; t) = exp(-t) I_n(t),   n in Z,  t = sigma^2 >= 0,

with ``I_n`` the modified Bessel function of the first kind and integer order
(``scipy.special.ive(n, t) == exp(-t) I_n(t)``). Over all of Z it sums to 1,
has variance ``t``, and forms a semigroup, ``T(.; t1) * T(.; t2) = T(.; t1 + t2)``
-- the properties that make it the scale-space kernel of a *discrete* signal
(the sampled continuous Gaussian has none of them exactly). A kernel is cut to
taps ``-w..w`` and renormalised. Two rules pick ``w``: the published one,
``w = 4 ceil(sqrt(t))`` (the DSS reference code as run in the SESN benchmark,
ISosnovik/sesn ``models/impl/deep_scale_space.py``), which the lift uses by
default so that its scale-space matches the authors' to float precision; and a
tail-mass rule (the smallest ``w`` whose two-sided tail is below ``tail``), under
which every property above holds to that tolerance. The published cut sits at
4-4.6 standard deviations: on STL-10's lift its taps differ from the
tail-mass ones by up to 3.4e-5 (the scale-space of a unit-variance image by
~2e-4), and its semigroup property holds to ~2e-5.

:class:`ScaleSpaceLift` turns an image batch ``(B, C, H, W)`` into a scale-space
``(B, C, S, H, W)``: index ``s`` is the input blurred to the total scale
``zero_scale * base**s`` (pixels). The input is taken to carry the blur
``zero_scale`` already, so slice ``s`` adds the variance
``t_s = zero_scale**2 * (base**(2 s) - 1)`` and slice 0 is the input itself.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import ive
from torch import nn

__all__ = ["ScaleSpaceLift", "discrete_gaussian", "gaussian_blur", "lift_variances",
           "published_half_width"]

DEFAULT_TAIL = 1e-10


def published_half_width(t: float) -> int:
    """The DSS reference code's half-width for variance ``t``: ``4 ceil(sqrt(t))`` taps."""
    return 4 * int(math.ceil(math.sqrt(t)))


def discrete_gaussian(t: float, tail: float = DEFAULT_TAIL,
                      half_width: int | None = None) -> np.ndarray:
    """Lindeberg's discrete Gaussian of variance ``t`` on taps ``-w..w`` (float64, sums to 1).

    ``w`` is ``half_width`` when given (then the taps are renormalised to sum 1),
    else the smallest half-width whose two-sided tail mass is below ``tail``;
    ``t == 0`` gives the unit impulse (the identity of the semigroup).
    """
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"the variance t must be finite and >= 0, got {t!r}")
    if t == 0:
        return np.ones(1)
    if half_width is not None:
        if half_width < 0:
            raise ValueError(f"half_width must be >= 0, got {half_width}")
        kernel = ive(np.abs(np.arange(-half_width, half_width + 1)), t)
        return kernel / kernel.sum()
    # ive(n, t) decays faster than geometrically once n > t; the first guess
    # (about 8 sigma) is nearly always enough and the loop only grows it.
    w = max(1, int(math.ceil(8.0 * math.sqrt(t))))
    while True:
        taps = ive(np.arange(0, w + 1), t)
        kept = taps[0] + 2.0 * taps[1:].sum()
        if 1.0 - kept < tail:
            break
        w *= 2
    # trim the taps that carry less than the tolerance (the first guess overshoots)
    cum_tail = 1.0 - (taps[0] + 2.0 * np.cumsum(taps[1:]))
    small = np.flatnonzero(cum_tail < tail)
    w = int(small[0]) + 1 if small.size else w
    half = taps[: w + 1]
    kernel = np.concatenate([half[:0:-1], half])
    return kernel / kernel.sum()


def lift_variances(n_scales: int, zero_scale: float, base: float = 2.0) -> list[float]:
    """The extra variance of each scale-space slice: ``zero_scale**2 * (base**(2 s) - 1)``."""
    if n_scales < 1:
        raise ValueError(f"n_scales must be >= 1, got {n_scales}")
    if zero_scale <= 0 or base <= 1:
        raise ValueError(f"need zero_scale > 0 and base > 1, got {zero_scale}, {base}")
    return [zero_scale ** 2 * (base ** (2 * s) - 1.0) for s in range(n_scales)]


def gaussian_blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable blur of ``x (B, C, H, W)`` by the 1-D ``kernel`` (zero padding, same size).

    Equivariant to integer translations away from the border (zero padding).
    Depthwise (``groups=C``): the blur never mixes channels.
    """
    w = kernel.numel() // 2
    if w == 0:
        return x * kernel.reshape(())
    c = x.shape[1]
    k = kernel.to(dtype=x.dtype, device=x.device)
    kx = k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(x, kx, padding=(0, w), groups=c)
    return F.conv2d(x, ky, padding=(w, 0), groups=c)


class ScaleSpaceLift(nn.Module):
    """Lift ``(B, C, H, W)`` to the discrete Gaussian scale-space ``(B, C, S, H, W)``.

    Equivariance: to integer translations (exactly, away from the zero-padded
    border) and to channel permutations. To 2x down-sampling it is
    equivariant only approximately -- slice ``s + 1`` of ``x`` sub-sampled by 2
    approximates slice ``s`` of ``x`` sub-sampled by 2 -- because discrete
    blurring and sub-sampling do not commute exactly; the scale convolution
    that follows (:class:`methods.dss.layers.ScaleConv`) is the exactly
    equivariant part. Along the scale axis the slices form a semigroup: slice
    ``s + 1`` is slice ``s`` blurred by ``t_{s+1} - t_s``.

    The kernels are computed once (float64, scipy) and held as buffers. They
    are cut at the published half-width ``4 ceil(sqrt(t))`` (module docstring)
    unless ``tail`` is given, which cuts them where their tail mass drops below
    it instead (the semigroup then holds to that tolerance).
    """

    def __init__(self, n_scales: int, zero_scale: float, base: float = 2.0,
                 tail: float | None = None):
        super().__init__()
        self.n_scales = n_scales
        self.zero_scale = zero_scale
        self.base = base
        self.tail = tail
        self.variances = lift_variances(n_scales, zero_scale, base)
        for s, t in enumerate(self.variances):
            if tail is None:
                taps = discrete_gaussian(t, half_width=published_half_width(t))
            else:
                taps = discrete_gaussian(t, tail)
            k = torch.from_numpy(taps).float()
            self.register_buffer(f"kernel{s}", k, persistent=False)

    def kernel(self, s: int) -> torch.Tensor:
        return getattr(self, f"kernel{s}")

    def extra_repr(self) -> str:
        cut = "published" if self.tail is None else f"tail={self.tail:g}"
        return (f"n_scales={self.n_scales}, zero_scale={self.zero_scale}, base={self.base}, "
                f"truncation={cut}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"ScaleSpaceLift needs (B, C, H, W), got shape {tuple(x.shape)}")
        return torch.stack([gaussian_blur(x, self.kernel(s)) for s in range(self.n_scales)], dim=2)
