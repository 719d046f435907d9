"""Helpers shared by tests/test_cpu_memory.py and tests/test_packaging.py: a probe, run in a
fresh interpreter, of whether glibc's allocator keeps a freed 64 MB block."""

from __future__ import annotations

# Appended to a probe script: allocate and free a 64 MB tensor (above glibc's largest mmap
# threshold) and set ``kept_mb``, the MB of free memory the allocator still holds in its heap
# (mallinfo2().fordblks). The script prints what it needs after it.
FREE_64MB_AND_MEASURE = '''
import ctypes
import torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena ordblks smblks hblks hblkhd usmblks "
                                              "fsmblks uordblks fordblks keepcost").split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
t = torch.empty(64 << 20, dtype=torch.uint8)
t.fill_(1)
del t
kept_mb = libc.mallinfo2().fordblks >> 20
'''


def has_mallinfo2() -> bool:
    """Whether this libc has ``mallinfo2`` (glibc >= 2.33), which the probe reads."""
    try:
        import ctypes
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False
