"""The work of a training step in floating-point operations: what ``bench perf`` divides by time.

:func:`count_flops` runs a function (one forward and backward) under PyTorch's
:class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix products and
convolutions (``2 m n k`` for an ``m x k`` by ``k x n`` product, whatever the dtype;
elementwise operations, reductions and the optimiser's update count 0), and under
:class:`FftCounter`, which counts the FFTs the former does not see.

FFT convention: a complex transform of length ``N`` costs ``5 N log2 N`` real
operations (the radix-2 count, as FFTW's benchmarks report it), and a multi-dimensional
transform is one such transform along every row of each transformed dimension in turn.
A transform of real input (``rfft``, ``aten._fft_r2c``) or to real output (``irfft``,
``aten._fft_c2r``) costs half of that along its real dimension, ``2.5 N log2 N``, and
its other dimensions are transformed on the half spectrum (``N // 2 + 1`` columns). So
``torch.fft.fft`` of ``B`` complex signals of length 8 is ``B * 5 * 8 * 3`` = ``120 B``
and ``torch.fft.rfft`` of ``B`` real signals of length 8 is ``60 B``. Backward passes
count through the transforms their own gradients call.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["FftCounter", "count_flops", "fft_flops"]

_aten = torch.ops.aten


def _transform(n: int, real: bool = False) -> float:
    """Operations of one 1-D transform of length ``n`` (``real``: of real data)."""
    if n <= 1:
        return 0.0
    return (2.5 if real else 5.0) * n * math.log2(n)


def fft_flops(shape: Sequence[int], dims: Sequence[int], kind: str,
              last_size: int | None = None) -> float:
    """Operations of one ``aten._fft_<kind>`` call (``kind``: ``c2c``, ``r2c`` or ``c2r``) on an
    input of ``shape`` over ``dims`` (the module docstring's convention). ``last_size``: the
    real length of a ``c2r`` transform's last dimension."""
    shape = list(shape)
    dims = [d % len(shape) for d in dims] if shape else []
    total = 0.0
    if kind == "r2c":  # the real dimension first, then the others on the half spectrum
        *rest, last = dims
        n = shape[last]
        total += math.prod(shape) / max(n, 1) * _transform(n, real=True)
        shape[last] = n // 2 + 1
        dims = rest
    elif kind == "c2r":  # the complex dimensions first, the real one last
        *rest, last = dims
        n = last_size if last_size is not None else 2 * (shape[last] - 1)
        for d in rest:
            total += math.prod(shape) / max(shape[d], 1) * _transform(shape[d])
        shape[last] = n
        return total + math.prod(shape) / max(n, 1) * _transform(n, real=True)
    for d in dims:
        total += math.prod(shape) / max(shape[d], 1) * _transform(shape[d])
    return total


class FftCounter(TorchDispatchMode):
    """Counts the operations of every FFT dispatched while it is active (``flops``)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0.0
        self._lock = threading.Lock()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = getattr(func, "overloadpacket", None)
        if packet in (_aten._fft_c2c, _aten._fft_r2c, _aten._fft_c2r):
            x, dims = args[0], args[1]
            kind = packet.__name__.rsplit("_", 1)[-1]
            last = args[3] if kind == "c2r" and len(args) > 3 else kwargs.get("last_dim_size")
            with self._lock:
                self.flops += fft_flops(x.shape, dims, kind, last)
        return func(*args, **kwargs)


def count_flops(fn: Callable[[], object]) -> tuple[float, float]:
    """``(all operations, of which FFTs)`` of one call of ``fn`` (see the module docstring)."""
    ffts = FftCounter()
    with FlopCounterMode(display=False) as counter, ffts:
        fn()
    return float(counter.get_total_flops()) + ffts.flops, ffts.flops
