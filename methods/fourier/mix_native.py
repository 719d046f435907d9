"""The spectral mixing's CPU kernel (``_mix_native.cpp``): bindings, operators, and the band's
mixing forward and backward by it.

:class:`~methods.fourier.spectral_mix.SpectralMix` mixes the band ``|k| <= kmax`` of a real
spectrum per frequency; with tensor operations (:mod:`methods.fourier.mix_pairs`) each row
pair's products are batched matrix products on stacked copies of the spectrum and of the
weights. The kernel computes the same band with the stacking folded into its loads: per
frequency, the four coefficients' combinations ``u, v, p, q`` for the batch, then every
output channel tile's products with the tile's weights in L1, the four outputs combined in
registers. Its forward serves the input gradient too (the conjugate-transposed weights: see
the source's header), and a second entry computes the weight gradient.

The kernel takes ``W`` and ``P`` as they are and packs one frequency's weights at a time in
each task (``P`` added to the real part, the derivation's factors, the conjugate transpose for
the input gradient), and writes the weight gradient as ``W`` is laid out. Its calls are
PyTorch custom operators (``scaleqbench::mix_kernel_rows``, ``_weight_grad``) with FLOP
formulas (2 per multiply-add: four real products per side and frequency), so that
``bench perf`` counts them. The kernel is built into one library with the ring
nonlinearity's (:mod:`methods.fourier.native`); a call's tasks
(:func:`~methods.fourier.native.call_tasks`) are its rows, or, where the threads outnumber
the rows, groups of a row's output-channel tiles (:func:`tile_groups`).
"""

from __future__ import annotations

import ctypes

import torch
from torch.utils.flop_counter import register_flop_formula

from scaleqbench.methods.fourier import native
from scaleqbench.methods.fourier.parallel import workers

__all__ = ["available", "inner_backward", "inner_forward", "tile_groups", "usable"]

_P, _I64 = ctypes.c_void_p, ctypes.c_int64


class _MixArgs(ctypes.Structure):
    """The kernel's ``MixArgs`` (see the source): one call's operands."""

    _fields_ = [("x", _P), ("xa", _I64), ("xb", _I64), ("ci", _I64), ("w", _P), ("pw", _P),
                ("transpose", _I64), ("y", _P), ("ya", _I64), ("yb", _I64), ("co", _I64),
                ("cop", _I64), ("gy", _P), ("gw", _P), ("gpw", _P), ("batch", _I64),
                ("nk", _I64), ("groups", _I64)]


def _library() -> ctypes.CDLL | None:
    return native.kernel_library(("mx_rows", "mx_weight_grad"), _MixArgs)


def available() -> bool:
    """Whether the mixing kernel was built with this install."""
    return _library() is not None


def usable(spec: torch.Tensor) -> bool:
    """Whether the kernel mixes a spectrum like ``spec``: CPU, float32/64, built."""
    return (spec.device.type == "cpu" and spec.dtype in (torch.float32, torch.float64)
            and available())


def _tile(dtype: torch.dtype) -> int:
    """Output channels per register tile (16 in float32, 8 in float64: two vectors)."""
    return _library().mx_tile(int(dtype == torch.float64))


def _padded(channels: int, dtype: torch.dtype) -> int:
    return -(-channels // _tile(dtype)) * _tile(dtype)


def _args(xs: torch.Tensor, ys: torch.Tensor, kmax: int, **ptrs: torch.Tensor | None) -> _MixArgs:
    """Operands of a call on spectra ``xs`` ``(K, K, B, C)`` and ``ys`` ``(K', K', B, C')``
    (contiguous; the kernel reads and writes their leading ``2 kmax + 1`` square); ``ptrs``:
    the other operands by name (None: absent)."""
    k, _, bsz, ci = xs.shape
    ky, _, _, co = ys.shape
    return _MixArgs(xa=k * bsz * ci, xb=bsz * ci, ci=ci, ya=ky * bsz * co, yb=bsz * co, co=co,
                    cop=_padded(co, xs.dtype), batch=bsz, nk=kmax + 1,
                    **{name: native.pointer(t) for name, t in ptrs.items()})


def tile_groups(rows: int, tiles: int, threads: int) -> int:
    """Tasks per row: 1 while the rows are at least twice the threads (one task per row, the
    stacking done once per frequency), else the row's output-channel tiles cut into as many
    groups as it takes for two tasks per thread (where the threads outnumber the rows)."""
    return max(1, min(tiles, -(-2 * threads // rows)))


def _call(entry: str, args: _MixArgs, dtype: torch.dtype, kmax: int) -> None:
    """``entry`` on rows ``0 .. kmax`` (row 0, then the row pairs): :func:`tile_groups` tasks
    per row."""
    args.groups = tile_groups(kmax + 1, args.cop // _tile(dtype), workers("cpu"))
    native.call_tasks(_library(), entry, args, dtype, list(range((kmax + 1) * args.groups + 1)),
                      "the spectral mixing's CPU kernel")


def _macs(batch: int, cin: int, cout: int, kmax: int) -> int:
    """Multiply-adds of one kernel call: four real products per side and frequency, side A
    alone on row 0."""
    return batch * cin * cout * (kmax + 1) * (8 * kmax + 4)


@torch.library.custom_op("scaleqbench::mix_kernel_rows", mutates_args=("y",), device_types="cpu")
def _rows_op(x: torch.Tensor, w: torch.Tensor, pw: torch.Tensor, y: torch.Tensor, kmax: int,
             transpose: bool) -> None:
    args = _args(x, y, kmax, x=x, w=torch.view_as_real(w), pw=pw, y=y)
    args.transpose = int(transpose)
    _call("mx_rows", args, x.dtype, kmax)


@torch.library.custom_op("scaleqbench::mix_kernel_weight_grad", mutates_args=("gw", "gpw"),
                         device_types="cpu")
def _weight_grad_op(x: torch.Tensor, gy: torch.Tensor, gw: torch.Tensor, gpw: torch.Tensor,
                    kmax: int) -> None:
    gw = native.operand(gw)
    _call("mx_weight_grad", _args(x, gy, kmax, x=x, gy=gy, gpw=gpw,
                                  gw=torch.view_as_real(gw) if gw is not None else None),
          x.dtype, kmax)


@register_flop_formula(torch.ops.scaleqbench.mix_kernel_rows)
def _rows_flops(x_shape, w_shape, pw_shape, y_shape, kmax, *args, **kwargs) -> int:
    return 2 * _macs(x_shape[2], x_shape[3], y_shape[3], kmax)


@register_flop_formula(torch.ops.scaleqbench.mix_kernel_weight_grad)
def _weight_grad_flops(x_shape, gy_shape, *args, kmax: int | None = None, **kwargs) -> int:
    kmax = args[2] if kmax is None else kmax
    return 2 * _macs(x_shape[2], x_shape[3], gy_shape[3], kmax)


def inner_forward(spec: torch.Tensor, w: torch.Tensor, pw: torch.Tensor | None,
                  out: torch.Tensor) -> None:
    """``out[:L, :L]`` (``L`` the multiplier's rows, ``2 kmax + 1``): the band mixed with
    ``W (+ P)``; ``spec`` and ``out`` contiguous."""
    torch.ops.scaleqbench.mix_kernel_rows(spec, w.contiguous(), native.as_operand(pw), out,
                                          (w.shape[0] - 1) // 2, False)


def inner_backward(spec: torch.Tensor, w: torch.Tensor, pw: torch.Tensor | None,
                   g_out: torch.Tensor, g_spec: torch.Tensor | None, g_w: torch.Tensor | None,
                   g_pw: torch.Tensor | None) -> None:
    """The transpose of :func:`inner_forward`: ``g_spec[:L, :L]`` and ``g_w`` (written),
    ``g_pw +=``."""
    kmax = (w.shape[0] - 1) // 2
    if g_spec is not None:
        torch.ops.scaleqbench.mix_kernel_rows(g_out, w.contiguous(), native.as_operand(pw),
                                              g_spec, kmax, True)
    if g_w is None and g_pw is None:
        return
    # dL/dP of the band per row task (each task adds to its own), summed here
    parts = spec.new_zeros(kmax + 1, *pw.shape) if g_pw is not None else None
    torch.ops.scaleqbench.mix_kernel_weight_grad(spec, g_out, native.as_operand(g_w),
                                                 native.as_operand(parts), kmax)
    if g_pw is not None:
        g_pw += parts.sum(0)
