"""The in-memory form of a built dataset: splits bucketed by image size.

A :class:`Split` keeps its images grouped by size (``images[s]`` is
``(n_s, C, s, s)``) because a batch holds a single size; ``index[s]`` maps each
bucket row back to its position in the split, so that per-image metadata
(``scale``, ``full``) lines up. ``full`` holds every image of the split at the
protocol's full size *before* it was scaled: the scale-consistency and
equivariance metrics derive all other sizes from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from scaleqbench.datasets.scaling import fourier_resize

__all__ = ["Split", "ScaledDataset", "bucket_split", "method_config_of", "stratified_split"]


def method_config_of(protocol: str) -> str:
    """The method configuration family that fits a dataset of ``protocol``: ``stl10`` for the
    STL-10 protocols, ``mnist`` for the others."""
    return "stl10" if protocol.startswith("stl10") else "mnist"


@dataclass
class Split:
    """One split (train / val / test): size buckets plus per-image metadata."""

    images: dict[int, torch.Tensor]
    labels: dict[int, torch.Tensor]
    index: dict[int, torch.Tensor]
    full: torch.Tensor
    full_labels: torch.Tensor
    scale: torch.Tensor  # per image: its size (mnist-res) or its shrink factor (mnist-scale)

    def __len__(self) -> int:
        return int(self.full_labels.numel())

    @property
    def sizes(self) -> list[int]:
        return sorted(self.images)

    def size_histogram(self) -> dict[int, int]:
        return {s: int(self.labels[s].numel()) for s in self.sizes}

    def subset(self, n: int, generator: torch.Generator) -> Split:
        """A stratified-by-bucket random subset of about ``n`` images (for tiny test runs)."""
        if n >= len(self):
            return self
        keep = torch.zeros(len(self), dtype=torch.bool)
        keep[torch.randperm(len(self), generator=generator)[:n]] = True
        new_pos = torch.cumsum(keep.long(), 0) - 1
        images, labels, index = {}, {}, {}
        for s in self.sizes:
            sel = keep[self.index[s]]
            if sel.any():
                images[s], labels[s] = self.images[s][sel], self.labels[s][sel]
                index[s] = new_pos[self.index[s][sel]]
        return Split(images, labels, index, self.full[keep], self.full_labels[keep],
                     self.scale[keep])

    def to_state(self) -> dict:
        return {"images": self.images, "labels": self.labels, "index": self.index,
                "full": self.full, "full_labels": self.full_labels, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict) -> Split:
        return cls(**state)


@dataclass
class ScaledDataset:
    """A built dataset: three splits and what the harness needs to know about them.

    ``scale_kind`` says what ``Split.scale`` holds (``"size"`` or ``"factor"``);
    ``consistency`` says how the scale-consistency views of a test image are
    made: ``("fourier", sizes)`` re-samples ``full`` to each size,
    ``("canvas", factors)`` zooms ``full`` on its canvas. ``eq_sizes`` are the
    target sizes ``s < full_size`` of the equivariance error. ``augment`` names the
    train-time augmentation (``None``, ``"rescale"``, ``"stl"``).
    """

    name: str
    protocol: str
    source: str
    seed: int
    in_channels: int
    num_classes: int
    full_size: int
    sizes: tuple[int, ...]
    scale_kind: str
    consistency: tuple[str, tuple]
    eq_sizes: tuple[int, ...]
    augment: str | None
    train: Split
    val: Split
    test: Split
    meta: dict = field(default_factory=dict)

    @property
    def method_config(self) -> str:
        """The method configuration family that fits this dataset (:func:`method_config_of`)."""
        return method_config_of(self.protocol)

    def to_state(self) -> dict:
        state = {k: getattr(self, k) for k in (
            "name", "protocol", "source", "seed", "in_channels", "num_classes", "full_size",
            "sizes", "scale_kind", "consistency", "eq_sizes", "augment", "meta")}
        state.update(train=self.train.to_state(), val=self.val.to_state(),
                     test=self.test.to_state())
        return state

    @classmethod
    def from_state(cls, state: dict) -> ScaledDataset:
        state = dict(state)
        for split in ("train", "val", "test"):
            state[split] = Split.from_state(state[split])
        state["sizes"] = tuple(state["sizes"])
        state["eq_sizes"] = tuple(state["eq_sizes"])
        state["consistency"] = (state["consistency"][0], tuple(state["consistency"][1]))
        return cls(**state)


def stratified_split(labels: np.ndarray, counts: tuple[int, ...], rng: np.random.Generator
                     ) -> list[np.ndarray]:
    """Disjoint index sets of exactly ``counts`` images, each with the class mix of ``labels``.

    Per class and split the quota is ``count * n_class / N``, rounded by largest
    remainder so that every split gets exactly its count.
    """
    n = labels.size
    if sum(counts) > n:
        raise ValueError(f"cannot draw {sum(counts)} images from {n}")
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    used = {c: 0 for c in classes}
    out = []
    for count in counts:
        exact = np.array([count * pools[c].size / n for c in classes])
        quota = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - quota), kind="stable")[: count - quota.sum()]:
            quota[i] += 1
        for i, c in enumerate(classes):  # a class that ran dry hands its quota on
            spare = pools[c].size - used[c] - quota[i]
            if spare < 0:
                quota[i] += spare
                j = next(j for j, d in enumerate(classes)
                         if pools[d].size - used[d] - quota[j] > 0)
                quota[j] -= spare
        parts = []
        for i, c in enumerate(classes):
            parts.append(pools[c][used[c]: used[c] + quota[i]])
            used[c] += quota[i]
        out.append(rng.permutation(np.concatenate(parts)))
    return out


def bucket_split(full: torch.Tensor, labels: torch.Tensor, assign: np.ndarray) -> Split:
    """A split whose image ``i`` has size ``assign[i]``: ``full[i]`` (the protocol's full size)
    down-scaled by ``fourier_resize`` (in float64), bucketed by size; ``scale`` holds the sizes."""
    images, labs, index = {}, {}, {}
    for s in sorted(set(assign.tolist())):
        pos = torch.from_numpy(np.flatnonzero(assign == s))
        images[s] = fourier_resize(full[pos].double(), s).float()
        labs[s], index[s] = labels[pos], pos
    return Split(images, labs, index, full, labels, torch.from_numpy(assign).float())
