"""A pool of warm CPU buffers for the Fourier network's large tensors, owned by the model.

Why. A paper-size training step allocates and frees hundreds of MB of spectra,
their gradients and the layers' outputs, many of them above glibc's largest
``mmap`` threshold (32 MB). glibc serves each such block with fresh pages and
unmaps them on ``free``, so every step pays for the kernel to fault in and zero
the same memory again (measured: ~400 k page faults per paper-size step, a third
of its time on the 2-core reference machine). A process-wide ``mallopt`` would
avoid it, but a library must not change the process it is imported into; so the
layers take those tensors from this pool instead, and the memory stays mapped
and warm from one step to the next.

How. Each block is an anonymous ``mmap`` (page aligned; advised to use transparent
huge pages where the kernel allows). :meth:`Workspace.empty` lends a tensor over
a free block through :func:`torch.frombuffer`, which keeps a Python buffer view of
the block alive for exactly as long as any tensor -- a view, an autograd saved
tensor, a gradient kept by the user -- still uses that storage. A weak reference
on that view returns the block to the pool the moment the storage dies. So a
buffer that backward still needs can never be lent twice, without any bookkeeping
by the layers; and everything is freed with the model (the pool is an attribute
of the modules), blocks still lent staying alive until their tensors die.

Policy: best fit among free blocks (a request may take a larger block); a new block
is mapped only when no free one fits, and the pool keeps what it once needed -- as
PyTorch's CUDA caching allocator does -- so it holds about the largest step's
working set; :meth:`Workspace.release` (``FourierNet.empty_cache()``) unmaps the
idle blocks. Small tensors (below ``min_bytes``) and non-CPU tensors come
from ``torch.empty``: glibc serves the former from its heap without faults, and
CUDA has its own caching allocator.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import mmap
import threading
import weakref

import torch

__all__ = ["Workspace", "workspace_empty"]

_HUGE = 2 << 20  # blocks are whole multiples of a transparent huge page


class Workspace:
    """The pool (see the module docstring). ``enabled=False``: every request is ``torch.empty``.

    ``blocks_created`` counts the blocks ever mapped (a second training step of the same
    shapes maps none); ``lent_bytes`` is what is lent now.
    """

    def __init__(self, enabled: bool = True, min_bytes: int = 1 << 20):
        self.enabled = enabled
        self.min_bytes = min_bytes
        self.blocks_created = 0
        self.lent_bytes = 0
        self._idle_bytes = 0
        self._free: list[tuple[int, int, mmap.mmap]] = []  # (capacity, serial, block), sorted
        self._serial = itertools.count()  # ties in capacity never compare the blocks
        # the weak references must live for their callbacks to run; they reach the pool only
        # weakly, so a dropped model frees its idle blocks at once (no reference cycle)
        self._lent: dict[int, weakref.ref] = {}
        self._lock = threading.RLock()  # a storage may die (and call back) on any thread

    # a model is pickled and deep-copied with its modules: the copy gets a fresh, empty pool
    def __reduce__(self):
        return type(self), (self.enabled, self.min_bytes)

    def __repr__(self) -> str:
        return (f"Workspace(enabled={self.enabled}, blocks={self.blocks_created}, "
                f"lent={self.lent_bytes >> 20} MB, idle={self._idle_bytes >> 20} MB)")

    @property
    def idle_bytes(self) -> int:
        return self._idle_bytes

    def empty(self, shape: tuple[int, ...] | torch.Size, dtype: torch.dtype,
              device: torch.device | str = "cpu") -> torch.Tensor:
        """An uninitialised contiguous tensor, from the pool when it is large and on the CPU."""
        shape = tuple(shape)
        numel = 1
        for s in shape:
            numel *= s
        nbytes = numel * dtype.itemsize
        if (not self.enabled or nbytes < self.min_bytes
                or torch.device(device).type != "cpu"):
            return torch.empty(shape, dtype=dtype, device=device)
        block = self._take(nbytes)
        view = memoryview(block)
        flat = torch.frombuffer(view, dtype=dtype, count=numel)
        # a tensor of its own over that storage, not a view of ``flat``: autograd treats views
        # made inside a custom Function specially (no in-place use, no in-place gradient sums)
        out = torch.empty(0, dtype=dtype).set_(flat.untyped_storage(), 0, shape)
        with self._lock:
            ref = weakref.ref(view, functools.partial(_give_back, weakref.ref(self), block))
            self._lent[id(ref)] = ref
            self.lent_bytes += len(block)
        return out

    def release(self) -> None:
        """Unmap every idle block (lent ones return to the pool as usual)."""
        with self._lock:
            self._free.clear()
            self._idle_bytes = 0

    # --- internals ---------------------------------------------------------------------------
    def _take(self, nbytes: int) -> mmap.mmap:
        with self._lock:
            i = bisect.bisect_left(self._free, (nbytes, -1))
            if i < len(self._free):
                cap, _, block = self._free.pop(i)
                self._idle_bytes -= cap
                return block
            self.blocks_created += 1
        cap = -(-nbytes // _HUGE) * _HUGE
        block = mmap.mmap(-1, cap)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                block.madvise(mmap.MADV_HUGEPAGE)
            except OSError:  # THP disabled or unsupported here: small pages are fine
                pass
        return block

    def _returned(self, ref: weakref.ref, block: mmap.mmap) -> None:
        with self._lock:
            del self._lent[id(ref)]
            cap = len(block)
            self.lent_bytes -= cap
            bisect.insort(self._free, (cap, next(self._serial), block))
            self._idle_bytes += cap


def _give_back(pool: weakref.ref, block: mmap.mmap, ref: weakref.ref) -> None:
    """Weak-reference callback: the last tensor over a lent block died."""
    ws = pool()
    if ws is not None:
        ws._returned(ref, block)


def workspace_empty(ws: Workspace | None, shape: tuple[int, ...] | torch.Size,
                    like: torch.Tensor) -> torch.Tensor:
    """``ws.empty(shape)`` with ``like``'s dtype and device, or ``torch.empty`` without a pool."""
    if ws is None:
        return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
    return ws.empty(shape, like.dtype, like.device)
