"""The band moments of real spectra by the CPU kernel (``_moments_native.cpp``): bindings and
operators for :class:`~methods.fourier.moments.SpectrumMoments`.

Each map's mean and the mean squares of its bands (the network's RMS head) in one call of
tasks over slices of maps, and the transpose in another, instead of a few tensor operations
per chunk of maps (see the source's header for why that matters beside a busy neighbour).
The kernel takes the products ``w[s, a] w[s, c]`` of the band weights and skips the zero
ones. Its calls are PyTorch custom operators (``scaleqbench::moments_kernel_forward``,
``_backward``) with FLOP formulas (2 per multiply-add it does: per map, the nonzero products).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import register_flop_formula

from scaleqbench.methods.fourier import native
from scaleqbench.methods.fourier.parallel import even_slices, workers

__all__ = ["BandProducts", "backward", "forward", "usable"]

_P, _I64 = ctypes.c_void_p, ctypes.c_int64
_WHAT = "the band moments' CPU kernel"


class _MomentArgs(ctypes.Structure):
    """The kernel's ``MomentArgs`` (see the source)."""

    _fields_ = [("spec", _P), ("K", _I64), ("N", _I64), ("k", _I64), ("S", _I64), ("ww", _P),
                ("mean", _P), ("ms", _P), ("gmean", _P), ("gms", _P), ("gspec", _P)]


def _library() -> ctypes.CDLL | None:
    return native.kernel_library(("mo_forward", "mo_backward"), _MomentArgs)


def usable(spec: torch.Tensor) -> bool:
    """Whether the kernel takes the moments of a spectrum like ``spec``: CPU, float32/64,
    built."""
    return (spec.device.type == "cpu" and spec.dtype in (torch.float32, torch.float64)
            and _library() is not None)


@dataclass(frozen=True)
class BandProducts:
    """What the kernel takes of band weights ``w`` ``(S, k)``: ``ww`` ``(S, k, k)``, the
    products ``w[s, a] w[s, c]``, and ``nonzero``, how many of them are not 0 (the multiply-adds
    per map: the kernel skips the others). Made once per forward, kept for backward."""

    ww: torch.Tensor
    nonzero: int

    @classmethod
    def of(cls, w: torch.Tensor) -> BandProducts:
        ww = (w[:, :, None] * w[:, None, :]).contiguous()
        return cls(ww, int(torch.count_nonzero(ww)))


def _bounds(n: int) -> list[int]:
    """Slices of the ``n`` maps: :data:`~methods.fourier.native.TASKS_PER_WORKER` per thread."""
    parts = even_slices(n, workers("cpu") * native.TASKS_PER_WORKER)
    return [sl.start for sl in parts] + [n]


def _args(spec: torch.Tensor, ww: torch.Tensor, **ptrs: torch.Tensor | None) -> _MomentArgs:
    big_k, _, n = spec.shape
    s, k, _ = ww.shape
    return _MomentArgs(spec=spec.data_ptr(), K=big_k, N=n, k=k, S=s, ww=ww.data_ptr(),
                       **{name: native.pointer(t) for name, t in ptrs.items()})


@torch.library.custom_op("scaleqbench::moments_kernel_forward", mutates_args=("mean", "ms"),
                         device_types="cpu")
def _forward_op(spec: torch.Tensor, ww: torch.Tensor, mean: torch.Tensor, ms: torch.Tensor,
                nnz: int) -> None:
    native.call_tasks(_library(), "mo_forward", _args(spec, ww, mean=mean, ms=ms), spec.dtype,
                      _bounds(spec.shape[2]), _WHAT)


@torch.library.custom_op("scaleqbench::moments_kernel_backward", mutates_args=("g_spec",),
                         device_types="cpu")
def _backward_op(spec: torch.Tensor, ww: torch.Tensor, g_mean: torch.Tensor, g_ms: torch.Tensor,
                 g_spec: torch.Tensor, nnz: int) -> None:
    native.call_tasks(_library(), "mo_backward",
                      _args(spec, ww, gmean=g_mean, gms=g_ms, gspec=g_spec),
                      spec.dtype, _bounds(spec.shape[2]), _WHAT)


@register_flop_formula(torch.ops.scaleqbench.moments_kernel_forward)
def _forward_flops(spec_shape, *args, nnz: int | None = None, **kwargs) -> int:
    return 2 * (args[3] if nnz is None else nnz) * spec_shape[2]


@register_flop_formula(torch.ops.scaleqbench.moments_kernel_backward)
def _backward_flops(spec_shape, *args, nnz: int | None = None, **kwargs) -> int:
    return 2 * (args[4] if nnz is None else nnz) * spec_shape[2]


def forward(spec: torch.Tensor, bands: BandProducts) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (N,), mean squares (S, N))`` of ``spec`` ``(K, K, N)`` (contiguous)."""
    mean = spec.new_empty(spec.shape[2])
    ms = spec.new_empty(bands.ww.shape[0], spec.shape[2])
    torch.ops.scaleqbench.moments_kernel_forward(spec, bands.ww, mean, ms, bands.nonzero)
    return mean, ms


def backward(spec: torch.Tensor, bands: BandProducts, g_mean: torch.Tensor | None,
             g_ms: torch.Tensor | None, g_spec: torch.Tensor) -> None:
    """``g_spec[:k, :k]`` (written) from the gradients at the mean and the mean squares."""
    torch.ops.scaleqbench.moments_kernel_backward(
        spec, bands.ww, native.as_operand(g_mean if g_mean is None else g_mean.contiguous()),
        native.as_operand(g_ms if g_ms is None else g_ms.contiguous()), g_spec, bands.nonzero)
