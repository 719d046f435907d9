"""How the Fourier layers cut their work into chunks: one budget per device, one splitter.

The autograd functions of :mod:`methods.fourier.grid_rings`,
:mod:`methods.fourier.moments` and :mod:`methods.fourier.spectral_mix` walk through
their maps (or frequency rows) a chunk at a time. On the CPU a chunk's temporaries
are sized to stay in the last-level cache instead of streaming full-size tensors
through memory (:data:`CHUNK_ELEMENTS`). On a GPU the same cut would be hundreds of
tiny kernel launches per layer, and caches are not the limit: a chunk there is as
large as memory allows (:func:`chunk_budget`), which for every configuration of the
benchmark is one chunk. The chunking changes no number on the CPU.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["CHUNK_ELEMENTS", "GPU_MEMORY_SHARE", "chunk_budget", "chunk_slices"]

#: elements of one chunk's largest temporary on the CPU (~4 MB in float32): large enough
#: that the per-chunk Python overhead is small, small enough to stay in the last-level cache
CHUNK_ELEMENTS = 1 << 20
#: on a GPU, one chunk's largest temporary may take this share of the device's memory
GPU_MEMORY_SHARE = 1 / 16
#: a budget that never cuts (devices without a memory to ask, e.g. ``meta``)
UNLIMITED = 1 << 62


@functools.lru_cache(maxsize=64)
def _budget(device: str) -> int:
    kind = torch.device(device)
    if kind.type == "cpu":
        return CHUNK_ELEMENTS
    if kind.type == "cuda":
        total = torch.cuda.get_device_properties(kind).total_memory
        # float64 elements: the largest element size the layers compute in
        return max(CHUNK_ELEMENTS, int(total * GPU_MEMORY_SHARE) // 8)
    return UNLIMITED


def chunk_budget(device: torch.device | str) -> int:
    """Elements of one chunk's largest temporary on ``device``: :data:`CHUNK_ELEMENTS` on the
    CPU; on a CUDA GPU :data:`GPU_MEMORY_SHARE` of its memory (no chunking unless memory
    requires it); no limit elsewhere."""
    return _budget(str(torch.device(device)))


def chunk_slices(n: int, per_item: int, budget: int = CHUNK_ELEMENTS) -> list[slice]:
    """Split ``n`` items of ``per_item`` elements each into consecutive slices of about
    ``budget`` elements (at least one item per slice)."""
    step = max(1, budget // max(1, per_item))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]
