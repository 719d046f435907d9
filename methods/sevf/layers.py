"""SEVF layers: multi-scale convolutions whose output is a vector field (magnitude, angle = scale).

Marcos, Kellenberger, Lobry & Tuia, "Scale equivariance in CNNs with vector
fields" (ICML 2018 workshop, arXiv:1807.11783). One filter is applied at ``S``
scales by resizing the *input* by ``s_i = base**e_i`` (bilinear), convolving at
that size and resizing the response back; ``e_i = -(n_small - 1) ... n_big``
(``s > 1``: the filter looks smaller, ``s < 1``: bigger). At every pixel only the
best scale survives:

    m = relu(max_i r_i),   theta = angle_{argmax_i r_i},   angle_i = e_i * angle_range / (S - 1)

and the output is the vector ``m (cos theta, sin theta)``. Zooming the input by
``base`` moves the best scale one step down the grid, so ``theta`` drops by one
angle step ``delta`` (up to bilinear resampling and the ends of the grid): the
layer is equivariant to the zoom acting on vector fields as zoom + rotation by
``-delta``. The magnitude alone is locally scale-invariant.

A vector field is stored as ``(B, C, 2, H, W)``: component axis ``(u, v)``
(:mod:`methods.sevf.vector_field` holds the operations on fields and the layers that
act on them alone: pooling, batch norm, dropout, 1x1 mixing).

The vector-to-vector convolution reads a field with two real filters
``(w_u, w_v)`` and, at scale ``i``, rotates the filter's vectors by ``+angle_i``
before the dot product: the response depends on the input angles through
``theta - angle_i``, which is what makes the layer equivariant (a zoomed input
has ``theta - delta`` and its best match is at scale ``i - 1``, whose angle is
``angle_i - delta``). Departure from the authors' code (both the original
ScaleEqNet and SESN's re-implementation): they rotate the filter by
``-angle_i`` (response through ``theta + angle_i``), which breaks that
equivariance; the two are related exactly by conjugation,
``theirs(u, v; w_u, w_v) == ours(u, -v; w_u, -w_v)``
(``tests/test_sevf.py`` checks both facts).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ScaleGrid", "SEVFConv", "SEVFLift", "SEVFScalarConv", "resize_conv"]


class ScaleGrid:
    """The scales ``base**e`` and their angles, ``e = -(n_small - 1), ..., n_big``.

    ``angle_range`` spans the whole grid, so neighbouring scales sit
    ``angle_range / (S - 1)`` apart (the published grid: 5 small, 3 big, base
    1.26, range 2 pi / 3, i.e. scales 0.40...2.0 and angles -68.6...51.4 deg).
    """

    def __init__(self, n_small: int = 5, n_big: int = 3, base: float = 1.26,
                 angle_range: float = 2 * math.pi / 3):
        if n_small < 1 or n_big < 0 or n_small + n_big < 2:
            raise ValueError(f"need n_small >= 1, n_big >= 0 and two scales at least, "
                             f"got n_small={n_small}, n_big={n_big}")
        if base <= 0:
            raise ValueError(f"scale base must be positive, got {base}")
        n = n_small + n_big
        self.exponents = tuple(float(e) for e in range(-(n_small - 1), n_big + 1))
        self.scales = tuple(base ** e for e in self.exponents)
        self.angles = tuple(e * angle_range / (n - 1) for e in self.exponents)
        self.base, self.angle_range = base, angle_range

    def __len__(self) -> int:
        return len(self.scales)

    @property
    def step(self) -> float:
        """The angle between neighbouring scales."""
        return self.angle_range / (len(self) - 1)

    def __repr__(self) -> str:
        return (f"ScaleGrid(scales={[round(s, 3) for s in self.scales]}, "
                f"step={math.degrees(self.step):.1f} deg)")


def resize_conv(x: torch.Tensor, weight: torch.Tensor, scale: float, padding: int,
                stride: int = 1) -> torch.Tensor:
    """Convolve ``x`` with ``weight`` at scale ``scale``: resize the input by ``scale``
    (bilinear), convolve, resize the response to the size the plain convolution gives.

    The resized size is ``round(n * scale)`` (at least 1). Bilinear without
    anti-aliasing, as the authors resample.
    """
    h, w = x.shape[-2:]
    k = weight.shape[-1]
    out_h, out_w = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    size = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    y = F.conv2d(x, weight, stride=stride, padding=padding)
    if y.shape[-2:] != (out_h, out_w):
        y = F.interpolate(y, size=(out_h, out_w), mode="bilinear", align_corners=False)
    return y


def _to_vectors(responses: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """``(S, B, C, H, W)`` responses -> ``(B, C, 2, H, W)``: relu(max) at the angle of the arg-max.

    ``directions`` is ``(S, 2)``: ``(cos, sin)`` of each scale's angle (looked up, not recomputed
    per pixel).
    """
    vals, idx = responses.max(0)
    mag = F.relu(vals)
    return torch.stack((mag * directions[idx, 0], mag * directions[idx, 1]), 2)


def _init_weight(weight: torch.Tensor) -> None:
    # nn.Conv2d's default (the authors' choice): fan-in of one filter
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))


class _MultiScale(nn.Module):
    """Shared plumbing: the scale grid (each angle's unit vector as a buffer), the conv geometry."""

    def __init__(self, kernel_size: int, stride: int, padding: int | None, grid: ScaleGrid):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.grid = grid
        angles = torch.tensor(grid.angles, dtype=torch.float64)
        self.register_buffer("directions", torch.stack((angles.cos(), angles.sin()), 1).to(
            torch.get_default_dtype()), persistent=False)

    def extra_repr(self) -> str:
        return f"k={self.kernel_size}, stride={self.stride}, {self.grid!r}"


class SEVFLift(_MultiScale):
    """Z2 -> vector field: ``(B, C, H, W)`` -> ``(B, C', 2, H', W')``.

    Every filter at every scale of the grid; magnitude ``relu(max)``, angle of
    the arg-max scale. Equivariant to translations (multiples of ``stride``)
    and, up to bilinear resampling and the ends of the grid, to zooms by
    ``base`` acting on the output as zoom + rotation by ``-step``. No bias (as
    published): a bias would favour no scale and only shift the magnitude.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None, n_small: int = 5, n_big: int = 3,
                 base: float = 1.26, angle_range: float = 2 * math.pi / 3):
        super().__init__(kernel_size, stride, padding, ScaleGrid(n_small, n_big, base, angle_range))
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        _init_weight(self.weight)

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """``(S, B, C', H', W')``: the filters' responses at every scale, before the max."""
        return torch.stack([resize_conv(x, self.weight, s, self.padding, self.stride)
                            for s in self.grid.scales])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _to_vectors(self.responses(x), self.directions.to(x.dtype))


class SEVFScalarConv(SEVFLift):
    """Z2 -> Z2: ``(B, C, H, W)`` -> ``(B, C', H', W')``, the lift's magnitude ``relu(max_i r_i)``.

    The scalar SEVF layer (the angle is dropped). Locally invariant to zooms by
    ``base`` (up to resampling and the ends of the grid): the output is
    equivariant to zooms with no change of its values; translation-equivariant.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # max (with indices) rather than amax: its backward is one scatter, not masks and sums
        return F.relu(self.responses(x).max(0).values)


class SEVFConv(_MultiScale):
    """Vector field -> vector field: ``(B, C, 2, H, W)`` -> ``(B, C', 2, H', W')``.

    At scale ``i``: ``r_i = conv_i(u, w_u') + conv_i(v, w_v')`` with the filter's
    vectors rotated by ``+angle_i`` (``w_u' = cos a w_u - sin a w_v``,
    ``w_v' = sin a w_u + cos a w_v``), then ``relu(max)`` at the arg-max angle.
    Equivariant to zooms by ``base`` acting on input and output alike as zoom +
    rotation by ``-step`` (up to resampling and the ends of the grid; exactly in
    the rotation part, see the module docstring), and to translations.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None, n_small: int = 5, n_big: int = 3,
                 base: float = 1.26, angle_range: float = 2 * math.pi / 3):
        super().__init__(kernel_size, stride, padding, ScaleGrid(n_small, n_big, base, angle_range))
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight_u = nn.Parameter(torch.empty(shape))
        self.weight_v = nn.Parameter(torch.empty(shape))
        _init_weight(self.weight_u)
        _init_weight(self.weight_v)

    def rotated_weights(self, i: int) -> torch.Tensor:
        """The scale-``i`` filter as one ``(C', 2C, k, k)`` kernel over the folded field."""
        a = self.grid.angles[i]
        c, s = math.cos(a), math.sin(a)
        wu = c * self.weight_u - s * self.weight_v
        wv = s * self.weight_u + c * self.weight_v
        return torch.stack((wu, wv), 2).flatten(1, 2)

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != 2:
            raise ValueError(f"SEVFConv expects a vector field (B, C, 2, H, W), "
                             f"got {tuple(x.shape)}")
        folded = x.flatten(1, 2)  # one resize and one conv per scale for both components
        return torch.stack([
            resize_conv(folded, self.rotated_weights(i), s, self.padding, self.stride)
            for i, s in enumerate(self.grid.scales)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _to_vectors(self.responses(x), self.directions.to(x.dtype))
