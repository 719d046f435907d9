"""Vector fields of the SEVF layers and the layers that act on them alone.

A vector field is stored as ``(B, C, 2, H, W)``: component axis ``(u, v)``. Folding
it, ``x.flatten(1, 2)``, gives ``(B, 2C, H, W)`` with channel ``2c + k``. An SEVF
convolution (:mod:`methods.sevf.layers`) turns a zoom of its input into a rotation
of these vectors; every layer here commutes with rotating all vectors by one angle
(pooling and batch norm act on lengths, dropout masks whole vectors, the 1x1 mixing
is real and shared by both components), so a network of them keeps that equivariance.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VectorBatchNorm", "VectorConv1x1", "VectorDropout", "VectorMaxPool", "angle_of",
           "fold", "magnitude", "rotate"]


def magnitude(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, 2, H, W)`` -> ``(B, C, H, W)``, the length of every vector.

    The gradient at a zero vector is 0: the plain ``sqrt(u^2 + v^2)`` gives NaN
    there, and the ReLU in every SEVF conv makes zero vectors common.
    (``linalg.vector_norm`` over the component axis does the same but is an
    order of magnitude slower on CPU than these elementwise operations.)
    """
    u, v = x.unbind(2)
    sq = u * u + v * v
    positive = sq > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, sq, 1.0)), 0.0)


class VectorMaxPool(nn.Module):
    """``k x k`` max-pooling of a vector field by magnitude: each window keeps its longest vector.

    Acts on lengths only, so it commutes with any rotation of the vectors
    (scale equivariance is kept); translation-equivariant for multiples of
    ``kernel_size``. ``ceil_mode`` (the default here; the authors floor) keeps odd
    sizes from losing a row.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0,
                 ceil_mode: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, h, w = x.shape
        _, idx = F.max_pool2d_with_indices(magnitude(x), self.kernel_size, self.stride,
                                           self.padding, ceil_mode=self.ceil_mode)
        flat = x.reshape(b, c, 2, h * w)
        picked = flat.gather(3, idx.flatten(2).unsqueeze(2).expand(b, c, 2, -1))
        return picked.reshape(b, c, 2, *idx.shape[-2:])


class VectorBatchNorm(nn.Module):
    """Batch normalisation of a vector field: both components divided by the std of the lengths.

    ``y = gamma * x / sqrt(var + eps)`` with ``var`` the (biased) variance of
    the magnitudes over batch and space in training, a running estimate (of the
    unbiased variance, momentum ``momentum``) in evaluation. No mean is
    subtracted and one factor scales both components of a channel, so the
    layer commutes with the rotation that a zoom induces (a negative gain turns
    vectors by pi, which commutes with it too). ``gamma`` (ones at start) is the
    original ScaleEqNet's learnable gain; SESN's copy holds it as a parameter
    but never applies it, so at start both give the same output.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.5):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != 2:
            raise ValueError(f"VectorBatchNorm expects (B, C, 2, H, W), got {tuple(x.shape)}")
        if self.training:
            mag = magnitude(x)
            var = mag.var(dim=(0, 2, 3), unbiased=False)
            n = mag.numel() / mag.shape[1]
            with torch.no_grad():
                unbiased = var * n / max(n - 1, 1)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
        else:
            var = self.running_var
        scale = self.weight / torch.sqrt(var + self.eps)
        return x * scale[None, :, None, None, None]

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class VectorDropout(nn.Module):
    """Dropout that zeroes whole vectors (one mask for both components): angles survive."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x[:, :, :1]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * keep


class VectorConv1x1(nn.Module):
    """The same real 1x1 channel mixing applied to ``u`` and ``v`` (a residual shortcut).

    A linear map with real weights commutes with rotating every vector by the
    same angle, and a 1x1 kernel with zooming: exactly scale-equivariant.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, h, w = x.shape
        y = self.conv(x.transpose(1, 2).reshape(b * 2, c, h, w))
        return y.reshape(b, 2, *y.shape[1:]).transpose(1, 2)


def rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate every vector of a ``(B, C, 2, H, W)`` field by ``angle`` (counter-clockwise)."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = x[:, :, 0], x[:, :, 1]
    return torch.stack((c * u - s * v, s * u + c * v), 2)


def angle_of(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, 2, H, W)`` -> ``(B, C, H, W)``: the angle of every vector (atan2(v, u))."""
    return torch.atan2(x[:, :, 1], x[:, :, 0])


def fold(x: torch.Tensor) -> torch.Tensor:
    """A vector field ``(B, C, 2, H, W)`` as ``(B, 2C, H, W)`` maps (channel ``2c + k``)."""
    return x.flatten(1, 2)
