"""Batches that hold one image size: a bucketed sampler over a :class:`~datasets.splits.Split`.

Models that are equivariant across sizes still need a batch to be one tensor,
so every batch is drawn from a single size bucket. With ``shuffle`` the order
of rows inside each bucket and the order of the batches across buckets are
drawn from the ``generator`` passed in; without it the order is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from scaleqbench.datasets.splits import Split

__all__ = ["SizeBucketSampler", "iterate_batches"]


class SizeBucketSampler:
    """Yields ``(size, rows)``: a bucket's size and the rows of one batch inside it."""

    def __init__(self, split: Split, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.generator, self.drop_last = generator, drop_last

    def _batches(self) -> list[tuple[int, torch.Tensor]]:
        batches = []
        for size in self.split.sizes:
            n = self.split.labels[size].numel()
            rows = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
            for start in range(0, n, self.batch_size):
                chunk = rows[start:start + self.batch_size]
                if self.drop_last and chunk.numel() < self.batch_size:
                    continue
                batches.append((size, chunk))
        if self.shuffle:
            order = torch.randperm(len(batches), generator=self.generator).tolist()
            batches = [batches[i] for i in order]
        return batches

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        return iter(self._batches())

    def __len__(self) -> int:
        if self.drop_last:
            return sum(self.split.labels[s].numel() // self.batch_size for s in self.split.sizes)
        return sum(-(-self.split.labels[s].numel() // self.batch_size) for s in self.split.sizes)


def iterate_batches(split: Split, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(images, labels, positions-in-split)`` batches, one size each."""
    for size, rows in SizeBucketSampler(split, batch_size, shuffle, generator):
        yield split.images[size][rows], split.labels[size][rows], split.index[size][rows]
