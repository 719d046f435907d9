"""DISCO layers: SESN's scale convolutions with the DISCO basis in place of the Hermite one.

DISCO (Sosnovik, Moskalev & Smeulders, BMVC 2021) keeps SESN's layer machinery
-- a kernel per scale synthesised from a fixed basis ``(F, S, k, k)`` and learned
coefficients ``(C', C, [D,] F)`` -- and changes only the basis
(:mod:`methods.disco.basis`). So the convolutions here *are* SESN's
(:class:`~methods.sesn.layers.SESLift`, :class:`~methods.sesn.layers.SESConvHH`):
each is built as usual and its :class:`~methods.sesn.layers.SteerableKernel` is
replaced by a :class:`DiscoKernel` holding the DISCO basis (same interface, same
coefficient count ``eff^2``).

Equivariance. Write ``D_r`` for the bicubic down-scaling by ``r`` and let
``r = s_j / s_i`` be a ratio of the layer's scales. A DISCO layer satisfies

    lift(D_r f)[:, :, i] ~= D_r lift(f)[:, :, j]

(the scale axis shifts from ``j`` to ``i``; likewise for the H -> H convolution),
exactly when ``r`` is an integer ratio of dilated impulses that the bicubic
resampling reproduces, and to the residual of the fitted basis otherwise -- the
equivariance loss the basis minimises. Both are tested numerically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from scaleqbench.methods.sesn.layers import SESConvHH, SESLift, SteerableKernel, from_batch, to_batch

__all__ = ["DiscoConvHH", "DiscoKernel", "DiscoLift", "ScaleAvgPool"]


def _odd_supports(basis: torch.Tensor) -> list[int]:
    """Per scale, the side of the smallest centred odd window that holds every non-zero."""
    k = basis.shape[-1]
    c = k // 2
    nonzero = basis.abs().amax(0) > 0  # (S, k, k)
    out = []
    for s in range(basis.shape[1]):
        idx = (nonzero[s].any(0) | nonzero[s].any(1)).nonzero().flatten()
        r = int(max(c - idx.min().item(), idx.max().item() - c)) if len(idx) else 0
        out.append(2 * r + 1)
    return out


class DiscoKernel(SteerableKernel):
    """A :class:`~methods.sesn.layers.SteerableKernel` whose basis is given (the DISCO basis).

    ``basis`` is ``(eff^2, S, k, k)``; ``scales`` are the layer's scales (for
    display and the scale axis). Synthesis and per-scale cropping are SESN's.
    """

    def __init__(self, basis: torch.Tensor, scales: Sequence[float]):
        nn.Module.__init__(self)  # the parent would build a Hermite basis; this one is given
        n_funcs, n_scales, k, k2 = basis.shape
        eff = math.isqrt(n_funcs)
        if eff * eff != n_funcs or k != k2 or k % 2 != 1 or n_scales != len(scales):
            raise ValueError(f"a DISCO basis is (eff^2, {len(scales)}, k, k) with odd k, "
                             f"got {tuple(basis.shape)}")
        self.register_buffer("basis", basis.to(torch.get_default_dtype()), persistent=False)
        self.kernel_size = k
        self.effective_size = eff
        self.scales = tuple(float(s) for s in scales)
        self.basis_type = "DISCO"
        self.supports = _odd_supports(basis)


def _swap_kernel(layer: SESLift | SESConvHH, basis: torch.Tensor, scales: Sequence[float]) -> None:
    layer.kernel = DiscoKernel(basis, scales)


class DiscoLift(SESLift):
    """Z2 -> H: ``(B, C, H, W)`` -> ``(B, C', S, H', W')``, SESN's lift with the DISCO basis.

    Equivariant to translations (by multiples of ``stride``) and to down-scaling
    by a ratio ``s_j / s_i`` of its scales as a shift ``j -> i`` of the scale axis,
    exactly for dilated impulses, up to the fitted residual otherwise (module
    docstring). One bias per output channel, shared by the scales.
    """

    def __init__(self, in_channels: int, out_channels: int, basis: torch.Tensor,
                 scales: Sequence[float], stride: int = 1, bias: bool = True):
        eff = math.isqrt(basis.shape[0])
        # a one-scale Hermite basis of the right shape; replaced at once by the DISCO basis
        super().__init__(in_channels, out_channels, kernel_size=basis.shape[-1],
                         effective_size=eff, scales=(1.0,), basis="A", stride=stride, bias=bias)
        _swap_kernel(self, basis, scales)


class DiscoConvHH(SESConvHH):
    """H -> H: ``(B, C, S, H, W)`` -> ``(B, C', S, H', W')``, SESN's scale convolution with the DISCO basis.

    Scale-kernel depth ``scale_depth`` as in SESN (the published DISCO models use 1).
    Equivariant to translations (by multiples of ``stride``) and to down-scaling
    by a ratio of its scales as a shift along the scale axis, up to the fitted
    residual and the ends of the axis.
    """

    def __init__(self, in_channels: int, out_channels: int, basis: torch.Tensor,
                 scales: Sequence[float], scale_depth: int = 1, stride: int = 1,
                 bias: bool = True):
        if scale_depth < 1 or scale_depth > len(scales):
            raise ValueError(f"scale_depth must be in 1..{len(scales)}, got {scale_depth}")
        eff = math.isqrt(basis.shape[0])
        super().__init__(in_channels, out_channels, kernel_size=basis.shape[-1],
                         effective_size=eff, scales=(1.0,) * scale_depth,
                         scale_depth=scale_depth, basis="A", stride=stride, bias=bias)
        _swap_kernel(self, basis, scales)


class ScaleAvgPool(nn.Module):
    """Spatial ``k x k`` average pooling of every scale slice of ``(B, C, S, H, W)``.

    The same linear map on each scale, so it commutes with scale shifts; equivariant
    to translations by multiples of ``kernel_size``. ``ceil_mode`` keeps odd sizes
    from losing a row (a partial window averages its pixels inside the image).
    """

    def __init__(self, kernel_size: int = 2):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_batch(self.pool(to_batch(x)), x.shape[2])
