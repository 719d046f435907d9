"""Rahman & Yeh's own STL-10 split and equivariance measurement, as their code makes them.

The Fourier paper's tables (Rahman & Yeh, NeurIPS 2023) were measured with the authors'
code (github.com/ashiq24/Scale_Equivarinat_Fourier_Layer). Two things of it define what
a published number means, and live here so that both the protocols and the harness read
them:

* **The STL-10 split** (``stl_data_module.py``, ``scale_stl.py``, ``train_stl.py``): the
  5,000 labelled training and 8,000 test images are pooled (13,000); a stratified 5,000
  become the test split, and of the other 8,000 a stratified 7,000 train and 1,000 val
  (two calls of scikit-learn's ``train_test_split``). Each split is shuffled and cut into
  49 groups of ``floor(n / 49)`` images, one per size 49...97 in a shuffled order: 142 /
  20 / 102 images per size; the remaining 42 / 20 / 2 images belong to no size and are
  never read. :func:`build_stl10_pooled` makes that split (the ``stl10-res-pooled``
  protocol). STL-10's classes are balanced, so one stratified draw of 7,000 / 1,000 /
  5,000 gives the same per-class counts (700 / 100 / 500) as their two.
  Their draws come from NumPy's global generator (seeded by ``seed_everything(0)``) as
  scikit-learn and their dataset class consume it; the indices depend on those libraries'
  versions and call order, so ours come from ``numpy.random.default_rng(seed)``: the same
  procedure and counts, not the same images.
* **The equivariance error** their tables print (``scale_eq/tests/test_equievarience.py``,
  called at the end of ``train_mnist.py`` / ``train_stl.py``): :class:`AuthorsEquivariance`
  says which layer, sizes and images, and the normalisation; ``bench.run.rahman_yeh``
  computes it (the ``rahman-yeh`` operator).

``datasets`` imports neither ``bench`` nor ``methods``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from scaleqbench.datasets import sources
from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.datasets.splits import ScaledDataset, Split, bucket_split, stratified_split

__all__ = ["AUTHORS_EQUIVARIANCE", "AuthorsEquivariance", "STL10_POOLED_COUNTS",
           "STL10_POOLED_SIZES", "authors_equivariance", "authors_number", "authors_test_images",
           "build_stl10_pooled", "pooled_parts", "recorded_number", "size_groups"]

#: train / val / test drawn from the pooled 13,000 STL-10 images (their flags
#: ``training_size`` 7,000 and ``test_size`` 5,000; val is the rest)
STL10_POOLED_COUNTS = (7000, 1000, 5000)
#: ``train_stl.py``'s train and test scales
STL10_POOLED_SIZES = tuple(range(49, 98))


def size_groups(n: int, sizes: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Their assignment of sizes (``ScaleSTL`` / ``ScaleMNIST``): the ``n`` images of a split
    shuffled, cut into ``len(sizes)`` consecutive groups of ``n // len(sizes)``, the groups
    shuffled and given the sizes in order. Per image its size, ``-1`` for the ``n mod
    len(sizes)`` images left in no group."""
    k = n // len(sizes)
    order = rng.permutation(n)
    groups = order[:k * len(sizes)].reshape(len(sizes), k)[rng.permutation(len(sizes))]
    assign = np.full(n, -1, dtype=np.int64)
    for size, members in zip(sizes, groups):
        assign[members] = size
    return assign


def pooled_parts(labels: np.ndarray, rng: np.random.Generator,
                 counts: tuple[int, int, int] = STL10_POOLED_COUNTS
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train, val and test of the pooled protocol from the pool's ``labels``: per split the
    pool indices it keeps (those in a size group) and their sizes (:func:`size_groups`)."""
    out = []
    for part in stratified_split(labels, counts, rng):
        assign = size_groups(len(part), STL10_POOLED_SIZES, rng)
        keep = assign >= 0
        out.append((part[keep], assign[keep]))
    return out


def build_stl10_pooled(source: str, seed: int, data_root=None,
                       counts: tuple[int, int, int] = STL10_POOLED_COUNTS) -> ScaledDataset:
    """``stl10-res-pooled``: STL-10 train+test pooled, stratified 7,000 / 1,000 / 5,000
    (``counts``), each split in 49 equal size groups 49...97 (module docstring), every image
    ``fourier_resize``-d to 97 and then to its size."""
    if source == "embedded":
        raise sources.SourceError("STL-10 has no embedded copy; use --source torchvision "
                                  "--data-root DIR with DIR/stl10_binary/")
    xtr, ytr = sources.load_stl10(data_root, "train")
    xte, yte = sources.load_stl10(data_root, "test")
    x, y = torch.cat([xtr, xte]), torch.cat([ytr, yte])
    splits: list[Split] = []
    for idx, assign in pooled_parts(y.numpy(), np.random.default_rng(seed), counts):
        idx = torch.from_numpy(idx)
        full = fourier_resize(x[idx].double(), 97).float()
        splits.append(bucket_split(full, y[idx], assign))
    drawn = dict(zip(("train", "val", "test"), counts))
    return ScaledDataset(
        name="stl10-res-pooled", protocol="stl10-res", source=source, seed=seed,
        in_channels=3, num_classes=10, full_size=97, sizes=STL10_POOLED_SIZES,
        scale_kind="size", consistency=("fourier", STL10_POOLED_SIZES),
        eq_sizes=tuple(range(49, 97)), augment=None,
        train=splits[0], val=splits[1], test=splits[2],
        meta={"counts": {k: len(sp) for k, sp in zip(drawn, splits)}, "drawn": drawn,
              "pooled": "train+test"})


@dataclass(frozen=True)
class AuthorsEquivariance:
    """How the authors' code measures the equivariance error on images of ``full_size``.

    Their ``get_equivarience_error``: each full-size test image ``x`` and its down-samplings
    ``D_s x`` (``rfft2`` truncation, the Nyquist kept) to every size of ``sizes``; the feature
    map of ``layer`` (``"first"``: the first block's, ``"last"``: the last block's); both maps
    cut to ``|k| < m/2`` on the smaller map's ``m x m`` grid (the Nyquist zeroed); per channel
    ``||a - b||^2 / (||a||^2 + 1e-6)``, averaged over channels; summed over ``sizes`` and
    divided by :attr:`denominator`, their list of sizes holding the full size too; averaged
    over ``images`` images (their loader's batches of full-size test images).
    """

    full_size: int
    sizes: tuple[int, ...]
    layer: str
    images: int
    script: str

    @property
    def denominator(self) -> int:
        """``len(sizes) + 1``: 21 on MNIST (sizes 8...28), 7 on STL-10 (49, 57, ..., 97)."""
        return len(self.sizes) + 1

    def layer_of(self, layers: list[str]) -> str | None:
        """Which of a model's feature maps (in its order) they compare."""
        return (layers[0] if self.layer == "first" else layers[-1]) if layers else None


def authors_number(per_size: Mapping[int, float]) -> float:
    """Their printed number from one layer's errors at each size: the sum over the sizes
    divided by the number of sizes plus one (their list of sizes holds the full size, skipped
    in the sum, counted in the division: :attr:`AuthorsEquivariance.denominator`)."""
    return sum(per_size.values()) / (len(per_size) + 1) if per_size else float("nan")


def recorded_number(nested: Mapping[str, Mapping], protocol: str) -> float | None:
    """Their number from a run's stored ``rahman-yeh`` errors ``{layer: {size: error}}``
    (sizes as strings or ints) on a protocol of family ``protocol``; None where the protocol
    is not theirs, no map was measured or the sizes are not their sizes."""
    how = AUTHORS_EQUIVARIANCE.get(protocol)
    layers = [k for k, v in nested.items() if k != "logits" and v]
    layer = how.layer_of(layers) if how is not None else None
    if layer is None:
        return None
    per_size = {int(s): v for s, v in nested[layer].items()}
    if sorted(per_size) != list(how.sizes) or any(v is None for v in per_size.values()):
        return None
    return authors_number(per_size)


def authors_test_images(ds: ScaledDataset, seed: int = 0) -> torch.Tensor | None:
    """The images their measurement averages over, on one of their protocols: up to
    ``images`` (:class:`AuthorsEquivariance`) of the test images the protocol assigned the
    full size -- their loader's batches at the full size -- in a seeded order, at full size;
    None on any other protocol."""
    how = AUTHORS_EQUIVARIANCE.get(ds.protocol)
    if (how is None or ds.scale_kind != "size" or ds.full_size != how.full_size
            or how.full_size not in ds.test.index):
        return None
    pos = ds.test.index[how.full_size]
    g = torch.Generator().manual_seed(20_000 + seed)
    return ds.test.full[pos[torch.randperm(len(pos), generator=g)[:how.images]]]


#: the two measurements their tables print, by protocol family: MNIST-scale (``train_mnist.py``:
#: the first block, sizes 8...27 against 28, one batch of 128 test images at 28 -- their loop
#: stops after the first batch beyond ``samples=100``), STL-10-scale (``train_stl.py``: the last
#: block, 49, 57, ..., 89 against 97, the 96 test images at 97 their loader reads)
AUTHORS_EQUIVARIANCE: dict[str, AuthorsEquivariance] = {
    "mnist-res": AuthorsEquivariance(28, tuple(range(8, 28)), "first", 128, "train_mnist.py"),
    "stl10-res": AuthorsEquivariance(97, tuple(range(49, 97, 8)), "last", 96, "train_stl.py"),
}


def authors_equivariance(full_size: int) -> AuthorsEquivariance | None:
    """Their measurement for images of ``full_size`` (28 or 97), None for any other size."""
    return next((m for m in AUTHORS_EQUIVARIANCE.values() if m.full_size == full_size), None)
