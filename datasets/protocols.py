"""Protocol builders: how the scaled train / val / test splits of each dataset are made.

* ``mnist-res`` (Rahman & Yeh 2023): MNIST train+test pooled, stratified
  10k / 10k / 50k (embedded: 3,000 / 500 / 1,500); every split divided evenly
  over the resolutions 8...28, each image down-scaled by ``fourier_resize``
  (no padding).
* ``mnist-scale`` (Sosnovik et al. 2020): pooled MNIST, stratified
  10k / 2k / 50k (embedded: 3,000 / 500 / 1,500); every image shrunk once by a
  factor drawn from U[0.3, 1] with ``canvas_rescale`` on the 28x28 canvas; the
  dataset seed is the realization (0-5). ``mnist-scale+`` is the same data with
  train-time rescale augmentation (factor U[0.5, 2], see ``datasets.augment``).
* ``stl10`` (SESN protocol): 96x96; 4,500 / 500 stratified from the labelled
  train set (val held out for model selection) / 8,000 test; crop+flip+cutout.
* ``stl10-res``: the same splits, each divided evenly over resolutions 49...97
  by ``fourier_resize``.
* ``stl10-res-pooled`` (Rahman & Yeh's split, :mod:`datasets.rahman_yeh`): STL-10
  train+test pooled, stratified 7,000 / 1,000 / 5,000, each split cut into 49 equal
  size groups 49...97 (142 / 20 / 102 per size, the rest unused), resized as
  ``stl10-res``. The split of the published STL-10-scale numbers; ``stl10-res`` (the
  official split) is the variant.
* Scale generalisation (the claim of Rahman & Yeh 2023: generalise to unseen
  resolutions): ``mnist-res-train28`` and ``mnist-res-train20-28`` are ``mnist-res``
  with the train and validation splits divided over 28 only / 20...28 only (model
  selection never sees a test-only size), and the test split over every size
  8...28 as before. ``stl10-res-train97`` and ``stl10-res-train69-97`` are the same
  for ``stl10-res`` (69/97 ~ 20/28).

All randomness comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from scaleqbench.datasets import sources
from scaleqbench.datasets.rahman_yeh import STL10_POOLED_COUNTS, build_stl10_pooled
from scaleqbench.datasets.scaling import canvas_rescale, fourier_resize
from scaleqbench.datasets.splits import ScaledDataset, Split, bucket_split, stratified_split

__all__ = ["DatasetInfo", "DATASETS", "build", "check_buildable", "dataset_info",
           "list_datasets"]

MNIST_RES_SIZES = tuple(range(8, 29))
STL10_RES_SIZES = tuple(range(49, 98))
CONSISTENCY_FACTORS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: train / val / test on the full data (``torchvision``): Rahman & Yeh's MNIST split (their
#: ``training_size`` 10,000, ``test_size`` 50,000, val the rest of the 70,000) and SESN's
#: MNIST-scale (``prepare_datasets.py``: 10,000 / 2,000 / 50,000)
MNIST_RES_COUNTS = (10_000, 10_000, 50_000)
MNIST_SCALE_COUNTS = (10_000, 2_000, 50_000)
#: STL-10's official split as ``stl10`` / ``stl10-res`` use it: 4,500 / 500 of the labelled
#: training images, the 8,000 test images
STL10_COUNTS = (4_500, 500, 8_000)


@dataclass(frozen=True)
class DatasetInfo:
    """What ``bench list datasets`` shows and what the cache key is made of."""

    name: str
    protocol: str
    description: str
    sources: tuple[str, ...]
    sizes: tuple[int, ...]
    version: int  # bump when the builder's output changes: invalidates the cache
    builder: Callable[..., ScaledDataset]
    #: the sizes of the train and validation splits when they are fewer than ``sizes`` (the
    #: scale-generalisation protocols); None: every size
    train_sizes: tuple[int, ...] | None = None
    #: train / val / test drawn on the full data (``torchvision``)
    counts: tuple[int, int, int] | None = None


def _bucket_by_size(full: torch.Tensor, labels: torch.Tensor, sizes: tuple[int, ...],
                    order: np.ndarray) -> Split:
    """Divide a split evenly over ``sizes`` (in the seeded ``order``) and Fourier-resize each bucket."""
    assign = np.empty(len(order), dtype=np.int64)
    assign[order] = np.asarray(sizes)[np.arange(len(order)) % len(sizes)]
    return bucket_split(full, labels, assign)


def _pooled_mnist(source: str, data_root) -> tuple[torch.Tensor, torch.Tensor]:
    if source == "embedded":
        return sources.load_embedded_mnist()
    if source == "torchvision":
        return sources.load_mnist(data_root)
    raise sources.SourceError(f"unknown source {source!r} for MNIST; use one of "
                              f"{', '.join(sources.SOURCES)}")


def _mnist_counts(source: str, full: tuple[int, int, int]) -> tuple[int, int, int]:
    return (3000, 500, 1500) if source == "embedded" else full


def _train_meta(train_sizes: tuple[int, ...] | None) -> dict:
    return {} if train_sizes is None else {"train_sizes": list(train_sizes)}


def _build_mnist_res(source: str, seed: int, data_root=None, name: str = "mnist-res",
                     train_sizes: tuple[int, ...] | None = None) -> ScaledDataset:
    x, y = _pooled_mnist(source, data_root)
    rng = np.random.default_rng(seed)
    counts = _mnist_counts(source, MNIST_RES_COUNTS)
    parts = stratified_split(y.numpy(), counts, rng)
    # train and val (model selection) over the training sizes, test over every size
    per_split = (train_sizes or MNIST_RES_SIZES,) * 2 + (MNIST_RES_SIZES,)
    splits = [_bucket_by_size(x[torch.from_numpy(p)], y[torch.from_numpy(p)], sizes,
                              rng.permutation(len(p))) for p, sizes in zip(parts, per_split)]
    return ScaledDataset(
        name=name, protocol="mnist-res", source=source, seed=seed, in_channels=1,
        num_classes=10, full_size=28, sizes=MNIST_RES_SIZES, scale_kind="size",
        consistency=("fourier", MNIST_RES_SIZES), eq_sizes=MNIST_RES_SIZES[:-1], augment=None,
        train=splits[0], val=splits[1], test=splits[2],
        meta={"counts": dict(zip(("train", "val", "test"), counts)),
              **_train_meta(train_sizes)})


def _build_mnist_scale(source: str, seed: int, data_root=None, name: str = "mnist-scale"
                       ) -> ScaledDataset:
    x, y = _pooled_mnist(source, data_root)
    rng = np.random.default_rng(seed)
    counts = _mnist_counts(source, MNIST_SCALE_COUNTS)
    splits = []
    for p in stratified_split(y.numpy(), counts, rng):
        idx = torch.from_numpy(p)
        full, labels = x[idx], y[idx]
        factors = torch.from_numpy(rng.uniform(0.3, 1.0, size=len(p)))
        scaled = canvas_rescale(full, factors).clamp_(0.0, 1.0)
        splits.append(Split({28: scaled}, {28: labels}, {28: torch.arange(len(p))},
                            full, labels, factors.float()))
    return ScaledDataset(
        name=name, protocol="mnist-scale", source=source, seed=seed, in_channels=1,
        num_classes=10, full_size=28, sizes=(28,), scale_kind="factor",
        consistency=("canvas", CONSISTENCY_FACTORS), eq_sizes=MNIST_RES_SIZES[:-1],
        augment="rescale" if name.endswith("+") else None,
        train=splits[0], val=splits[1], test=splits[2],
        meta={"counts": dict(zip(("train", "val", "test"), counts)),
              "shrink_factor": [0.3, 1.0]})


def _build_stl10(source: str, seed: int, data_root=None, resolutions: bool = False,
                 name: str = "stl10-res", train_sizes: tuple[int, ...] | None = None
                 ) -> ScaledDataset:
    if source == "embedded":
        raise sources.SourceError("STL-10 has no embedded copy; use --source torchvision "
                                  "--data-root DIR with DIR/stl10_binary/")
    xtr, ytr = sources.load_stl10(data_root, "train")
    xte, yte = sources.load_stl10(data_root, "test")
    rng = np.random.default_rng(seed)
    n_val = max(1, round(0.1 * len(ytr)))
    tr, va = stratified_split(ytr.numpy(), (len(ytr) - n_val, n_val), rng)
    groups = [(xtr[torch.from_numpy(tr)], ytr[torch.from_numpy(tr)]),
              (xtr[torch.from_numpy(va)], ytr[torch.from_numpy(va)]), (xte, yte)]
    if resolutions:
        full_size, sizes = 97, STL10_RES_SIZES
        per_split = (train_sizes or sizes,) * 2 + (sizes,)
        splits = [_bucket_by_size(fourier_resize(gx.double(), full_size).float(), gy, ss,
                                  rng.permutation(len(gy)))
                  for (gx, gy), ss in zip(groups, per_split)]
        consistency, augment = ("fourier", sizes), None
    else:
        full_size, sizes = 96, (96,)
        splits = [Split({96: gx}, {96: gy}, {96: torch.arange(len(gy))}, gx, gy,
                        torch.full((len(gy),), 96.0)) for gx, gy in groups]
        consistency, augment, name = ("fourier", tuple(range(48, 97, 8))), "stl", "stl10"
    return ScaledDataset(
        name=name, protocol="stl10-res" if resolutions else "stl10", source=source, seed=seed,
        in_channels=3, num_classes=10,
        full_size=full_size, sizes=sizes, scale_kind="size", consistency=consistency,
        eq_sizes=tuple(range(49, full_size)),
        augment=augment, train=splits[0], val=splits[1], test=splits[2],
        meta={"counts": {"train": len(tr), "val": len(va), "test": len(yte)},
              **_train_meta(train_sizes)})


def _generalisation(base: str, lo: int, hi: int) -> DatasetInfo:
    """The scale-generalisation variant of multi-resolution protocol ``base``: trained (and
    validated) on sizes ``lo..hi`` only, tested on every size."""
    name = f"{base}-train{lo}" if lo == hi else f"{base}-train{lo}-{hi}"
    train_sizes = tuple(range(lo, hi + 1))
    if base == "mnist-res":
        sources_, sizes = ("embedded", "torchvision"), MNIST_RES_SIZES

        def builder(source: str, seed: int, data_root=None) -> ScaledDataset:
            return _build_mnist_res(source, seed, data_root, name=name, train_sizes=train_sizes)
    else:
        sources_, sizes = ("torchvision",), STL10_RES_SIZES

        def builder(source: str, seed: int, data_root=None) -> ScaledDataset:
            return _build_stl10(source, seed, data_root, resolutions=True, name=name,
                                train_sizes=train_sizes)
    trained = f"size {lo}" if lo == hi else f"sizes {lo}..{hi}"
    return DatasetInfo(name, base, f"scale generalisation: {base} trained on {trained} only, "
                       f"tested on {min(sizes)}..{max(sizes)}", sources_, sizes, 1, builder,
                       train_sizes,
                       MNIST_RES_COUNTS if base == "mnist-res" else STL10_COUNTS)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info for info in (
        DatasetInfo("mnist-res", "mnist-res",
                    "multi-resolution MNIST (Rahman & Yeh 2023): sizes 8..28 by fourier_resize",
                    ("embedded", "torchvision"), MNIST_RES_SIZES, 1, _build_mnist_res,
                    counts=MNIST_RES_COUNTS),
        _generalisation("mnist-res", 28, 28),
        _generalisation("mnist-res", 20, 28),
        DatasetInfo("mnist-scale", "mnist-scale",
                    "MNIST-scale (Sosnovik et al. 2020): shrink U[0.3,1] on a 28x28 canvas",
                    ("embedded", "torchvision"), (28,), 1, _build_mnist_scale,
                    counts=MNIST_SCALE_COUNTS),
        DatasetInfo("mnist-scale+", "mnist-scale",
                    "MNIST-scale with train-time rescale augmentation U[0.5,2]",
                    ("embedded", "torchvision"), (28,), 1,
                    lambda source, seed, data_root=None: _build_mnist_scale(
                        source, seed, data_root, name="mnist-scale+"),
                    counts=MNIST_SCALE_COUNTS),
        DatasetInfo("stl10", "stl10", "STL-10, 96x96, crop+flip+cutout (SESN protocol)",
                    ("torchvision",), (96,), 1, _build_stl10, counts=STL10_COUNTS),
        DatasetInfo("stl10-res", "stl10-res", "STL-10 at resolutions 49..97 by fourier_resize",
                    ("torchvision",), STL10_RES_SIZES, 1,
                    lambda source, seed, data_root=None: _build_stl10(
                        source, seed, data_root, resolutions=True),
                    counts=STL10_COUNTS),
        DatasetInfo("stl10-res-pooled", "stl10-res",
                    "STL-10 at resolutions 49..97, Rahman & Yeh's split: train+test pooled, "
                    "7,000 / 1,000 / 5,000, 142 / 20 / 102 images per size",
                    ("torchvision",), STL10_RES_SIZES, 1, build_stl10_pooled,
                    counts=STL10_POOLED_COUNTS),
        _generalisation("stl10-res", 97, 97),
        _generalisation("stl10-res", 69, 97),
    )
}


class UnknownDatasetError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def list_datasets() -> list[str]:
    return list(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        import difflib
        close = difflib.get_close_matches(name, list(DATASETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownDatasetError(f"unknown dataset {name!r}{hint}; available: "
                                  f"{', '.join(DATASETS)}")
    return DATASETS[name]


def _info_for_source(name: str, source: str) -> DatasetInfo:
    info = dataset_info(name)
    if source not in info.sources:
        raise sources.SourceError(f"dataset {name!r} cannot be built from source {source!r}; "
                                  f"use one of: {', '.join(info.sources)}")
    return info


def build(name: str, source: str = "embedded", seed: int = 0,
          data_root: str | os.PathLike | None = None) -> ScaledDataset:
    """Build dataset ``name`` from ``source`` (no cache; see ``datasets.cache.load_or_build``)."""
    return _info_for_source(name, source).builder(source, seed, data_root=data_root)


def check_buildable(name: str, source: str = "embedded",
                    data_root: str | os.PathLike | None = None) -> None:
    """That ``name`` can be built from ``source`` here: the dataset and source exist and the
    source's files are there (:func:`sources.check_source`), checked without building it,
    reading its pixels or writing anything; the same one-line errors a build raises."""
    info = _info_for_source(name, source)
    kind = "stl10" if info.protocol.startswith("stl10") else f"mnist-{source}"
    sources.check_source(kind, data_root)
