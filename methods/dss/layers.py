"""DSS layers on scale-space tensors ``(B, C, S, H, W)``: scale convolution, spatial pooling, BN.

The max over scales is :class:`methods.common.MaxOverScales` (DSS uses ``share_ties=True``:
scales tied at the maximum share its gradient).

The central operation of Worrall & Welling (2019) is the *semigroup
correlation* of a scale-space feature map ``f`` with a kernel ``w`` that spans
``depth`` scales and a ``k x k`` spatial window::

    [f * w](s, x) = sum_{d < depth} sum_y  f(s + d, x + base**s * y) w(d, y)

i.e. at output scale ``s`` the spatial kernel is dilated by ``base**s`` and
reads input scales ``s .. s + depth - 1``. With an integer ``base`` the action
of 2x down-sampling on a scale-space, ``(L f)(s, x) = f(s + 1, 2 x)``, commutes
with it exactly: ``[L f * w](s, x) = [f * w](s + 1, 2 x)``. The scale axis is
finite, so
the layer is computed in "valid" mode along scale: only output scales
``s <= S - depth`` whose window lies inside the input, so a depth-``d`` layer
shortens the scale axis by ``d - 1`` (as the published STL-10 model does).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.scale_axis import ScaleAxis

__all__ = ["DilatedSpatialMaxPool", "ScaleBatchNorm", "ScaleConv", "dilated_conv2d",
           "dss_scale_axis", "fold_scales"]


def fold_scales(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, S, H, W) -> (B, C * S, H, W)``, channel-major (channel c, scale s -> c * S + s)."""
    b, c, s, h, w = x.shape
    return x.reshape(b, c * s, h, w)


def dss_scale_axis(base: int, n_scales: int) -> ScaleAxis:
    """The scale axis of a folded DSS map (:func:`fold_scales`): scale ``s`` is dilated by
    ``base**s``, so a ``base``-fold down-sampling of the input moves slice ``s + 1`` to ``s``."""
    return ScaleAxis(tuple(float(base ** s) for s in range(n_scales)))


def dilated_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   dilation: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=dilation * (k // 2), dilation=dilation)``, computed
    by space-to-batch: the ``dilation**2`` polyphase sub-grids of ``x`` are convolved with the
    undilated kernel and interleaved back.

    Exactly the same sums (zero padding included: the grid is zero-extended to a
    multiple of ``dilation`` and cropped back); it exists because CPU dilated
    convolutions are 1.5-3x slower than undilated ones of the same FLOPs, and
    most of a large dilated kernel would otherwise fall on padding at MNIST sizes.
    On a GPU, where cuDNN runs dilated convolutions natively and each reshuffle is
    another pass through memory, the dilated convolution itself is used.
    """
    half = weight.shape[-1] // 2
    if dilation == 1:
        return F.conv2d(x, weight, bias, padding=half)
    if x.device.type != "cpu":
        return F.conv2d(x, weight, bias, padding=dilation * half, dilation=dilation)
    b, c, h, w = x.shape
    d = dilation
    hp, wp = -(-h // d), -(-w // d)
    x = F.pad(x, (0, wp * d - w, 0, hp * d - h))
    x = x.reshape(b, c, hp, d, wp, d).permute(0, 3, 5, 1, 2, 4).reshape(b * d * d, c, hp, wp)
    y = F.conv2d(x, weight, bias, padding=half)
    o = y.shape[1]
    y = y.reshape(b, d, d, o, hp, wp).permute(0, 3, 4, 1, 5, 2).reshape(b, o, hp * d, wp * d)
    return y[..., :h, :w]


class ScaleConv(nn.Module):
    """Semigroup (scale) correlation: dilation ``base**s`` at scale ``s``, ``depth`` scales deep.

    Input ``(B, C_in, S, H, W)``, output ``(B, C_out, S - depth + 1, H', W')``.
    Padding keeps the spatial size at stride 1 (``dilation * (k // 2)`` zeros
    each side).

    Equivariance: exactly to integer translations (stride 1, away from the
    zero-padded border) and to the 2x down-sampling action on scale-spaces
    ``f(s, x) -> f(s + 1, 2 x)`` (a shift along the scale axis) for integer
    ``base``, at stride 1: the output at scale ``s`` of the down-sampled input
    equals the output at scale ``s + 1`` of the original, sub-sampled by 2.
    ``init="delta"`` starts near an identity map (Yu & Koltun's initialisation,
    which the reference STL-10 DSS model uses); ``"he"`` is He-normal.
    The same weights are used at every scale (weight sharing over scale is
    what makes it equivariant); the bias, if any, is shared too.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_scales: int,
                 depth: int = 1, base: int = 2, stride: int = 1, bias: bool = False,
                 init: str = "he"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (centred taps), got {kernel_size}")
        if not 1 <= depth <= n_scales:
            raise ValueError(f"scale depth must be in 1..n_scales={n_scales}, got {depth}")
        if int(base) != base or base < 2:
            raise ValueError(f"base must be an integer >= 2 (integer dilations), got {base}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.n_scales, self.depth = kernel_size, n_scales, depth
        self.base, self.stride = int(base), stride
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, depth,
                                               kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if init not in ("he", "delta"):
            raise ValueError(f"init must be 'he' or 'delta', got {init!r}")
        self.init = init
        self.reset_parameters()

    @property
    def out_scales(self) -> int:
        return self.n_scales - self.depth + 1

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if self.init == "he":
            # He-normal over the whole receptive field (channels x depth x k x k), so
            # every scale starts with the same gain.
            fan_in = self.in_channels * self.depth * self.kernel_size ** 2
            nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / fan_in))
            return
        # delta: small noise plus a centre tap that maps input-channel groups onto
        # output-channel groups (gcd(C_in, C_out) groups), so a deep residual stack
        # starts close to the identity at every scale.
        nn.init.uniform_(self.weight, -1e-2, 1e-2)
        groups = math.gcd(self.in_channels, self.out_channels)
        gi = torch.arange(self.in_channels) * groups // self.in_channels
        go = torch.arange(self.out_channels) * groups // self.out_channels
        mask = go[:, None] == gi[None, :]
        c = self.kernel_size // 2
        centre = self.weight[:, :, :, c, c]
        centre[mask] = groups / self.out_channels

    def dilation(self, s: int) -> int:
        return self.base ** s

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"n_scales={self.n_scales}, depth={self.depth}, base={self.base}, "
                f"stride={self.stride}, bias={self.bias is not None}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.n_scales:
            raise ValueError(f"ScaleConv expects (B, {self.in_channels}, {self.n_scales}, H, W), "
                             f"got shape {tuple(x.shape)}")
        b, c, n_s, h, w = x.shape
        half = self.kernel_size // 2
        # the d-th kernel slice meets input scale s + d; channels and scales flatten
        # together (channel-major), so one conv2d per output scale does the whole sum
        ws = self.weight.reshape(self.out_channels, c * self.depth,
                                 self.kernel_size, self.kernel_size)
        outs = []
        for s in range(self.out_scales):
            xs = x[:, :, s:s + self.depth].reshape(b, c * self.depth, h, w)
            d = self.dilation(s)
            if self.stride == 1:
                outs.append(dilated_conv2d(xs, ws, self.bias, d))
            else:  # strided (WRN): the polyphase split does not apply directly
                outs.append(F.conv2d(xs, ws, self.bias, stride=self.stride,
                                     padding=d * half, dilation=d))
        return torch.stack(outs, dim=2)


class DilatedSpatialMaxPool(nn.Module):
    """2x2 max-pool (stride 2) of every scale slice of ``(B, C, S, H, W)``, the window of
    scale ``s`` dilated by ``base**s``::

        out(s, q) = max_{delta in {0, 1}^2} f(s, 2 q + base**s * delta)

    Equivariance: exactly to the 2x down-sampling action on scale-spaces,
    ``f(s, x) -> f(s + 1, 2 x)``, for ``base == kernel_size == 2`` (the window of
    scale ``s + 1`` read on the fine grid is the window of scale ``s`` read on the
    coarse one, as for the dilated convolutions of :class:`ScaleConv`), on every
    pixel of even-sized maps; to translations by even shifts. The per-scale dilation
    follows from the paper's equivariance condition (every spatial operator at scale
    ``s`` acts ``base**s`` times wider); an undilated window at every scale -- what
    the MNIST re-implementation in SESN's code does -- breaks the exact equivariance
    of the network after its first pool. Output size ``ceil(H / k)`` as ``cnn``'s
    ``ceil_mode`` pool: the grid is extended on its far side by ``-inf``, and every
    window holds at least one real pixel (its first tap).
    """

    def __init__(self, kernel_size: int = 2, base: int = 2):
        super().__init__()
        if int(base) != base or base < 1:
            raise ValueError(f"base must be a positive integer (integer dilations), got {base}")
        self.kernel_size = kernel_size
        self.base = int(base)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, base={self.base}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n_s, h, w = x.shape
        k = self.kernel_size
        ho, wo = -(-h // k), -(-w // k)
        outs = []
        for s in range(n_s):
            d = self.base ** s
            # far-side extension so that the last window (first tap at k * (ho - 1)) fits
            ext = d * (k - 1) + 1 - k
            y = F.pad(x[:, :, s], (0, k * wo - w + ext, 0, k * ho - h + ext), value=-math.inf)
            outs.append(F.max_pool2d(y, k, stride=k, dilation=d))
        return torch.stack(outs, dim=2)


class ScaleBatchNorm(nn.BatchNorm3d):
    """BatchNorm on ``(B, C, S, H, W)`` with statistics and affine parameters shared over scales.

    Equivariance: to translations and to any permutation or shift of the scale
    axis in eval mode (one affine map per channel, identical at every scale).
    In training mode the batch statistics pool all scales, which is what keeps
    the per-channel normalisation the same at every scale.
    """
