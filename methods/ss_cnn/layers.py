"""The SS-CNN layer: a scale-steered filter at several kernel sizes, max over the sizes.

Ghosh & Gupta, "Scale Steerable Filters for Locally Scale-Invariant
Convolutional Neural Networks" (ICML 2019 workshop, arXiv:1906.03861). Each
filter is a combination of the log-radial harmonics of
:mod:`methods.ss_cnn.basis` with learned complex coefficients ``c``. Its
dilation by ``s`` is steered, not resampled: the coefficients of frequency
``k`` turn by ``exp(-i k_eff log s)``. The layer makes the filter at every
kernel size ``K_i`` of its range, ``s_i = K_i / K_0`` (``K_0`` the base size),
by steering the coefficients and cropping the basis (sampled once on the largest
grid) to ``K_i x K_i``; it convolves the input with each (same padding) and
keeps the maximum over the sizes at every pixel (then a ReLU, if asked):

    y = max_i  conv(x, Re sum_{k, f} c_{kf} exp(-i k_eff log s_i) psi_{kf}|_{K_i}).

Scale structure: steering is what dilating the continuous filter by ``s_i`` does to
its coefficients, so with kernels that resolve the basis the filter at size ``K_j``
meets a pattern dilated by ``K_j / K_i`` as the filter at ``K_i`` meets the pattern,
and the max tends to local invariance to dilations within the size range. At the
published sizes (3/5/7, 5...13) the sampled filters are *not* dilations of one
another: the centre pixel and the edge of the support do not rescale, and the steered
filter differs from the dilated one by 23-55 % (relative L2; the measurement is in
tests/test_ss_cnn.py's module docstring). The max over sizes is then a max over
differently sized filters that share their coefficients, not an invariance the layer
guarantees. It is translation-equivariant (by multiples of ``stride``). One size alone
(as in the residual blocks of the published STL-10 WRN) is a plain convolution with a
steerable-basis filter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.ss_cnn.basis import log_radial_basis

__all__ = ["DEFAULT_PHIS", "ScaleSteerableConv"]

#: the published orientations: 9 values from 0 to pi inclusive (0 and pi give the same
#: pi-periodic envelope, so one function appears twice; kept for the published parameter count)
DEFAULT_PHIS: tuple[float, ...] = tuple(math.pi * i / 8 for i in range(9))


class ScaleSteerableConv(nn.Module):
    """``(B, C, H, W)`` -> ``(B, C', H', W')``: max over kernel sizes of a scale-steered filter.

    ``base_size`` is the size whose scale is 1 (the authors' ``kernel_size``);
    ``sizes`` the odd kernel sizes used (the authors' ``ker_size_range``); ``ks``
    the log-radial frequencies ``k``; ``phis`` the orientations, ``sigma_phi``
    their angular width, ``phase`` the harmonics' phase. Parameters: real and
    imaginary coefficients ``(K, C', C, F)``; no bias. The basis is a buffer.

    Translation-equivariant for multiples of ``stride``; invariant to dilations by ratios
    of ``sizes`` only as far as the sampled filters are dilations of one another, which at
    the published sizes they are not (module docstring).
    """

    def __init__(self, in_channels: int, out_channels: int, base_size: int, sizes: Sequence[int],
                 ks: Sequence[float] = (0.5, 1.0, 2.0), phis: Sequence[float] = DEFAULT_PHIS,
                 sigma_phi: float = math.pi / 16, phase: float = -math.pi / 4, stride: int = 1,
                 relu: bool = True):
        super().__init__()
        sizes = tuple(int(k) for k in sizes)
        odd = all(k >= 1 and k % 2 == 1 for k in sizes)
        if not sizes or not odd or sizes != tuple(sorted(set(sizes))):
            raise ValueError(f"kernel sizes must be distinct odd numbers in increasing order, "
                             f"got {sizes}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.base_size, self.sizes, self.stride, self.relu = base_size, sizes, stride, relu
        self.ks = tuple(float(k) for k in ks)
        re, im, k_eff = log_radial_basis(sizes[-1], self.ks, phis, sigma_phi, phase)
        self.k_eff = k_eff
        self.num_funcs = re.shape[1]
        dtype = torch.get_default_dtype()
        self.register_buffer("basis_real", re.to(dtype), persistent=False)
        self.register_buffer("basis_imag", im.to(dtype), persistent=False)
        # the steering phase of each (size, frequency): -k_eff log(K_i / K_0)
        phase_table = [[-kk * math.log(size / base_size) for kk in k_eff] for size in sizes]
        self.register_buffer("steer_cos", torch.tensor(phase_table, dtype=dtype).cos(),
                             persistent=False)
        self.register_buffer("steer_sin", torch.tensor(phase_table, dtype=dtype).sin(),
                             persistent=False)
        shape = (len(self.ks), out_channels, in_channels, self.num_funcs)
        self.weight_real = nn.Parameter(torch.empty(shape))
        self.weight_imag = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the authors' initialisation: U(+-sqrt(2 / (F C C'))) per coefficient (unit-norm functions)
        bound = math.sqrt(2.0 / (self.num_funcs * self.in_channels * self.out_channels))
        nn.init.uniform_(self.weight_real, -bound, bound)
        nn.init.uniform_(self.weight_imag, -bound, bound)

    def kernel(self, i: int) -> torch.Tensor:
        """The ``(C', C, K_i, K_i)`` filter of size ``sizes[i]`` (steered coefficients)."""
        size, full = self.sizes[i], self.sizes[-1]
        lo = (full - size) // 2
        cos = self.steer_cos[i][:, None, None, None]
        sin = self.steer_sin[i][:, None, None, None]
        c_re = self.weight_real * cos - self.weight_imag * sin
        c_im = self.weight_real * sin + self.weight_imag * cos
        # Re(c psi) = Re c Re psi - Im c Im psi, summed over frequencies and orientations
        coeffs = torch.cat((c_re, -c_im), 0).permute(1, 2, 0, 3).flatten(2)  # (C', C, 2KF)
        funcs = torch.cat((self.basis_real, self.basis_imag), 0)[..., lo:lo + size, lo:lo + size]
        return (coeffs @ funcs.flatten(0, 1).flatten(1)).reshape(
            self.out_channels, self.in_channels, size, size)

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """``(N_sizes, B, C', H', W')``: the response at every kernel size, before the max."""
        return torch.stack([F.conv2d(x, self.kernel(i), stride=self.stride, padding=size // 2)
                            for i, size in enumerate(self.sizes)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.responses(x).max(0).values  # one scatter in backward, not masks
        return F.relu(y) if self.relu else y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, base={self.base_size}, "
                f"sizes={self.sizes}, ks={self.ks}, funcs={self.num_funcs}, stride={self.stride}, "
                f"relu={self.relu}")
