"""How the Fourier layers cut their work into cache-sized chunks: one budget, one splitter.

The autograd functions of :mod:`methods.fourier.grid_rings`,
:mod:`methods.fourier.moments` and :mod:`methods.fourier.spectral_mix` walk through
their maps (or frequency rows) a chunk at a time, so that each chunk's temporaries
stay in the last-level cache instead of streaming full-size tensors through memory.
"""

from __future__ import annotations

__all__ = ["CHUNK_ELEMENTS", "chunk_slices"]

#: elements of one chunk's largest temporary (~4 MB in float32): large enough that the
#: per-chunk Python overhead is small, small enough to stay in the last-level cache
CHUNK_ELEMENTS = 1 << 20


def chunk_slices(n: int, per_item: int, budget: int = CHUNK_ELEMENTS) -> list[slice]:
    """Split ``n`` items of ``per_item`` elements each into consecutive slices of about
    ``budget`` elements (at least one item per slice)."""
    step = max(1, budget // max(1, per_item))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]
