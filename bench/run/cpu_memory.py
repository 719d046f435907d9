"""How the harness asks the C allocator to serve PyTorch's large CPU tensors.

A training step of the Fourier network allocates and frees hundreds of MB of
temporaries (grid stacks, spectra, their gradients). By default glibc serves every
block over 32 MB -- and, after ``free``, much of the rest -- with fresh ``mmap``
pages that it unmaps again on release, so each step pays for the kernel to fault in
and zero the same memory again: measured on the 2-core reference machine, ~450 k
page faults and a third of the wall time of a paper-size `fourier` step, and most
of the run-to-run noise. So:

* ``THP_MEM_ALLOC_ENABLE=1``: PyTorch backs allocations over 2 MiB with transparent
  huge pages (read lazily, so setting it before the first big allocation suffices);
* ``mallopt(M_MMAP_MAX, 0)`` and a trim threshold of 2 GiB: large blocks come from
  the heap and stay mapped after ``free``, to be reused by the next step. The cost is
  that the process keeps its peak heap (``bench perf`` still measures a step's
  working set: it trims explicitly before measuring).

A user's own settings win: a ``THP_MEM_ALLOC_ENABLE`` already in the environment is
kept, and glibc is left alone when the environment sets ``MALLOC_MMAP_MAX_``,
``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``, or ``SCALEQBENCH_SYSTEM_MALLOC=1``.
Non-glibc systems are left alone.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["release_free_heap", "tune_cpu_allocator"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers
_USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES",
                  "SCALEQBENCH_SYSTEM_MALLOC")


def _libc():
    """glibc, or ``None`` where there is none (then nothing here does anything)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_cpu_allocator() -> bool:
    """Apply the settings above; ``True`` when glibc's were changed."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    libc = _libc()
    if libc is None or any(os.environ.get(k) for k in _USER_SETTINGS):
        return False
    no_mmap = libc.mallopt(_M_MMAP_MAX, 0)
    return bool(no_mmap) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def release_free_heap() -> None:
    """Give the memory the allocator holds but does not use back to the OS (``malloc_trim``),
    whatever the settings above; ``bench perf`` does it before measuring a step's memory."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
