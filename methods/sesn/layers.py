"""SESN layers: the lift Z2 -> H, the scale convolution H -> H, 1x1 mixing, spatial pooling, BN.

The max over scales (H -> Z2) is :class:`methods.common.MaxOverScales`.

Signals on ``H`` (scale x translation) are tensors ``(B, C, S, H, W)``: axis 2
holds the ``S`` scales ``sigma_0 < ... < sigma_{S-1}`` of the layer's basis
(see :mod:`methods.sesn.basis`). Write ``L_t`` for the dilation of an image by
``t`` (``[L_t f](x) = f(x / t)``, amplitudes kept) and ``T_v`` for a translation.
When ``t = sigma_{j+i} / sigma_j`` for the basis's scale grid, the continuous
SESN layers satisfy

    lift(L_t f)[:, :, s]  = L_t lift(f)[:, :, s - i]            (Z2 -> H)
    conv(L_t g)[:, :, s]  = L_t conv(g)[:, :, s - i]            (H -> H)

i.e. a dilation of the input is a dilation of every map plus a shift along the
scale axis. On pixels this holds up to the sampling of the basis on the integer
grid and up to the ends of the finite scale axis (scales shifted out are lost;
in H -> H with scale-kernel depth > 1 the missing larger scales are zeros).

Implementation notes: the kernel of scale ``s`` is zero outside its
``support[s] x support[s]`` centre (the basis is sampled on a grid proportional
to ``sigma_s``), so each scale is convolved with its cropped kernel: the same
result as the padded ``k x k`` kernel at a fraction of the multiply-adds.
The layers return ``(B, C, S, H, W)`` *views* of scale-major ``(S, B, C, H, W)``
memory, so that every scale slice is contiguous for the next convolution and
BN / pooling run on a free ``(S*B, C, H, W)`` reshape (:func:`to_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.sesn.basis import steerable_basis

__all__ = [
    "from_batch",
    "to_batch",
    "ScaleBatchNorm",
    "SESConv1x1",
    "SESConvHH",
    "SESLift",
    "SpatialMaxPoolPerScale",
    "SteerableKernel",
]


def to_batch(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, S, H, W)`` -> ``(S*B, C, H, W)``; free (a view) for scale-major memory."""
    b, c, n_s, h, w = x.shape
    return x.permute(2, 0, 1, 3, 4).reshape(n_s * b, c, h, w)


def from_batch(y: torch.Tensor, num_scales: int) -> torch.Tensor:
    """Inverse of :func:`to_batch`: ``(S*B, C, H, W)`` -> ``(B, C, S, H, W)`` view."""
    sb, c, h, w = y.shape
    return y.reshape(num_scales, sb // num_scales, c, h, w).permute(1, 2, 0, 3, 4)


class SteerableKernel(nn.Module):
    """Holds a steerable basis ``(F, S, k, k)`` and turns coefficients into per-scale kernels.

    Not a layer: it has no parameters; :class:`SESLift` and :class:`SESConvHH`
    own the coefficients and use it to synthesise their kernels.
    """

    def __init__(self, kernel_size: int, effective_size: int, scales: Sequence[float],
                 basis: str = "B", mult: float = 1.5, max_order: int = 4):
        super().__init__()
        b = steerable_basis(basis, kernel_size, scales, effective_size, mult=mult,
                            max_order=max_order)
        # computed in float64, stored in the default dtype (moves with .to() / .double())
        self.register_buffer("basis", b.to(torch.get_default_dtype()), persistent=False)
        self.kernel_size = kernel_size
        self.effective_size = effective_size
        self.scales = tuple(float(s) for s in scales)
        self.basis_type = basis.upper()
        # support per scale: the smallest odd centred window holding every non-zero
        nz = b.abs().amax(0) > 0  # (S, k, k)
        c = kernel_size // 2
        self.supports = []
        for s in range(b.shape[1]):
            rows = nz[s].any(1).nonzero().flatten()
            r = int(max(c - rows.min().item(), rows.max().item() - c))
            self.supports.append(2 * r + 1)

    @property
    def num_funcs(self) -> int:
        return self.basis.shape[0]

    @property
    def num_scales(self) -> int:
        return self.basis.shape[1]

    def crop(self, kernel: torch.Tensor, s: int) -> torch.Tensor:
        """Cut the ``k x k`` kernel(s) of scale ``s`` down to that scale's support."""
        lo = (self.kernel_size - self.supports[s]) // 2
        return kernel[..., lo:lo + self.supports[s], lo:lo + self.supports[s]]

    def synthesize(self, weight: torch.Tensor) -> torch.Tensor:
        """``(..., F)`` coefficients -> ``(S, ..., k, k)`` kernels, one per scale."""
        k = self.kernel_size
        basis = self.basis.to(weight.dtype).reshape(self.num_funcs, -1)
        out = weight @ basis  # (..., S*k*k)
        out = out.reshape(*weight.shape[:-1], self.num_scales, k, k)
        return out.movedim(-3, 0)

    def extra_repr(self) -> str:
        return (f"basis={self.basis_type}, k={self.kernel_size}, eff={self.effective_size}, "
                f"scales={[round(s, 3) for s in self.scales]}, supports={self.supports}")


def _init_coefficients(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    # nn.Conv2d's default for the weight: the fan-in of a coefficient tensor (out, in, [D,] F)
    # is in*[D*]F, the same as that of the eff x eff convolution it replaces. The bias starts
    # at zero, as in the authors' SESN layers (not nn.Conv2d's uniform draw).
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        nn.init.zeros_(bias)


class SESLift(nn.Module):
    """Z2 -> H: ``(B, C, H, W)`` -> ``(B, C', S, H', W')``, the input convolved with every scaled kernel.

    Equivariant to translations (by multiples of ``stride``) and, up to the
    discretisation of the basis, to dilations by a ratio of the scale grid,
    which shift the output's scale axis (module docstring). The bias is one
    per output channel, shared by all scales, so that it does not break the
    scale equivariance.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, effective_size: int,
                 scales: Sequence[float], basis: str = "B", mult: float = 1.5, max_order: int = 4,
                 stride: int = 1, bias: bool = True):
        super().__init__()
        self.kernel = SteerableKernel(kernel_size, effective_size, scales, basis, mult, max_order)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.kernel.num_funcs))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        _init_coefficients(self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernels = self.kernel.synthesize(self.weight)  # (S, C', C, k, k)
        outs = []
        for s in range(self.kernel.num_scales):
            w = self.kernel.crop(kernels[s], s).contiguous()
            outs.append(F.conv2d(x, w, self.bias, stride=self.stride, padding=w.shape[-1] // 2))
        return torch.stack(outs, 0).permute(1, 2, 0, 3, 4)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class SESConvHH(nn.Module):
    """H -> H: ``(B, C, S, H, W)`` -> ``(B, C', S, H', W')``, scale convolution of depth ``D``.

    Output scale ``s`` is ``sum_{d < D} psi_{sigma_s}[d] * x[:, :, s + d]``: each
    scale slice is convolved with the kernel of its own scale, mixing the
    ``D - 1`` next larger scales (zeros beyond the last one). ``D = 1`` has the
    parameters of a plain ``eff x eff`` convolution.

    Equivariant to translations (by multiples of ``stride``) and to dilations
    by a ratio of the scale grid acting as a shift along the scale axis, up to
    the discretisation of the basis and the ends of the scale axis.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, effective_size: int,
                 scales: Sequence[float], scale_depth: int = 1, basis: str = "B",
                 mult: float = 1.5, max_order: int = 4, stride: int = 1, bias: bool = True):
        super().__init__()
        if scale_depth < 1 or scale_depth > len(scales):
            raise ValueError(f"scale_depth must be in 1..{len(scales)}, got {scale_depth}")
        self.kernel = SteerableKernel(kernel_size, effective_size, scales, basis, mult, max_order)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.scale_depth = stride, scale_depth
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, scale_depth, self.kernel.num_funcs))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        _init_coefficients(self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_s, depth = self.kernel.num_scales, self.scale_depth
        if x.dim() != 5 or x.shape[2] != n_s:
            raise ValueError(f"SESConvHH expects (B, C, {n_s}, H, W), got {tuple(x.shape)}")
        kernels = self.kernel.synthesize(self.weight)  # (S, C', C, D, k, k)
        if depth > 1:
            x = F.pad(x, (0, 0, 0, 0, 0, depth - 1))
        b, c, _, h, w = x.shape
        outs = []
        for s in range(n_s):
            # depth 1: x[:, :, s] is contiguous for scale-major memory, so no copy
            xs = x[:, :, s] if depth == 1 else x[:, :, s:s + depth].reshape(b, c * depth, h, w)
            ks = self.kernel.crop(kernels[s], s).flatten(1, 2).contiguous()  # (C', C*D, c, c)
            outs.append(F.conv2d(xs, ks, self.bias, stride=self.stride,
                                 padding=ks.shape[-1] // 2))
        return torch.stack(outs, 0).permute(1, 2, 0, 3, 4)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, scale_depth={self.scale_depth}, "
                f"stride={self.stride}")


class SESConv1x1(nn.Module):
    """H -> H 1x1 convolution (the same channel mixing at every scale), e.g. a residual shortcut.

    A 1x1 kernel has no spatial extent, so it is exactly equivariant to
    dilations (scale shifts) and to translations by multiples of ``stride``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, bias: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_batch(self.conv(to_batch(x)), x.shape[2])


class SpatialMaxPoolPerScale(nn.Module):
    """Spatial ``k x k`` max-pooling applied to every scale slice of ``(B, C, S, H, W)``.

    Acts on each scale alike, so it commutes with scale shifts; like any
    strided pooling it is equivariant only to translations by multiples of
    ``kernel_size``. ``ceil_mode`` keeps odd sizes from losing a row.
    """

    def __init__(self, kernel_size: int = 2):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_batch(self.pool(to_batch(x)), x.shape[2])


class ScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm on ``(B, C, S, H, W)`` with statistics and affine maps shared over the scales.

    One mean/variance/gamma/beta per channel for all scales (the statistics
    run over batch, scales and space, as ``BatchNorm3d`` would): a per-scale
    normalisation would break the scale-shift equivariance.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:  # called on the (S*B, C, H, W) reshape
            raise ValueError(f"ScaleBatchNorm expects (B, C, S, H, W), got {x.dim() + 1}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"ScaleBatchNorm expects (B, C, S, H, W), got {tuple(x.shape)}")
        return from_batch(super().forward(to_batch(x)), x.shape[2])
