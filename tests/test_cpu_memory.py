"""bench.cpu_memory: large freed blocks stay with the allocator, so a training loop stops
paying for the kernel to map and zero them again on every step."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from allocator_probe import FREE_64MB_AND_MEASURE, has_mallinfo2

# report whether the allocator (tuned or not) still holds a freed 64 MB block
PROBE = """
import sys
if sys.argv[1] == "tuned":  # importing bench tunes the allocator; calling again says whether it did
    from scaleqbench.bench.run.cpu_memory import tune_cpu_allocator
    changed = tune_cpu_allocator()
else:
    changed = False
""" + FREE_64MB_AND_MEASURE + """
print(changed, kept_mb)
"""


def probe(mode: str, **env: str) -> tuple[bool, int]:
    """``(allocator changed, MB of freed memory the allocator kept)`` in a fresh interpreter."""
    environ = {k: v for k, v in os.environ.items() if k != "SCALEQBENCH_SYSTEM_MALLOC"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         env=environ, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_tuned_allocator_keeps_large_freed_blocks_for_reuse():
    changed, kept = probe("tuned")
    _, kept_default = probe("default")
    assert changed
    assert kept >= 64  # the 64 MB block stays with malloc, ready for the next step
    assert kept_default < 64  # glibc's default unmaps it: the next step faults it in again


@pytest.mark.skipif(not has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_a_users_own_malloc_settings_win():
    changed, kept = probe("tuned", SCALEQBENCH_SYSTEM_MALLOC="1")
    assert not changed and kept < 64
