"""bench.cpu_memory: large freed blocks stay with the allocator, so a training loop stops
paying for the kernel to map and zero them again on every step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# allocate and free a 64 MB tensor (above glibc's largest mmap threshold), then report whether
# the allocator still holds those bytes (mallinfo2().fordblks: free bytes kept in the heap)
PROBE = """
import ctypes, sys
if sys.argv[1] == "tuned":  # importing bench tunes the allocator; calling again says whether it did
    from scalebench.bench.cpu_memory import tune_cpu_allocator
    changed = tune_cpu_allocator()
else:
    changed = False
import torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena ordblks smblks hblks hblkhd usmblks "
                                              "fsmblks uordblks fordblks keepcost").split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
t = torch.empty(64 << 20, dtype=torch.uint8)
t.fill_(1)
del t
print(changed, libc.mallinfo2().fordblks >> 20)
"""


def probe(mode: str, **env: str) -> tuple[bool, int]:
    """``(allocator changed, MB of freed memory the allocator kept)`` in a fresh interpreter."""
    environ = {k: v for k, v in os.environ.items() if k != "SCALEBENCH_SYSTEM_MALLOC"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         env=environ, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def has_mallinfo2() -> bool:
    try:
        import ctypes
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_tuned_allocator_keeps_large_freed_blocks_for_reuse():
    changed, kept = probe("tuned")
    _, kept_default = probe("default")
    assert changed
    assert kept >= 64  # the 64 MB block stays with malloc, ready for the next step
    assert kept_default < 64  # glibc's default unmaps it: the next step faults it in again


@pytest.mark.skipif(not has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_a_users_own_malloc_settings_win():
    changed, kept = probe("tuned", SCALEBENCH_SYSTEM_MALLOC="1")
    assert not changed and kept < 64
