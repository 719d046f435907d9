"""The on-disk dataset cache: built datasets keyed by a hash of everything that defines them.

A cache file ``<name>-<key>.pt`` is written atomically (temporary file, fsync,
rename) next to ``<name>-<key>.sha256``, which holds the digest of its bytes and the
cache key of the dataset it holds. On load both are checked: a truncated or corrupt
file is reported and rebuilt, and so is an intact file of another dataset (a file
copied or renamed under this entry's name): the digest proves the bytes are whole, the
key which dataset they are. Neither is ever silently used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path

import torch

from scaleqbench.datasets.protocols import build, dataset_info
from scaleqbench.datasets.splits import ScaledDataset

__all__ = ["cache_key", "cache_path", "default_cache_dir", "ensure_cached", "load_or_build"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SCALEQBENCH_CACHE``, else ``$XDG_CACHE_HOME/scaleqbench``, else ``~/.cache/scaleqbench``."""
    if os.environ.get("SCALEQBENCH_CACHE"):
        return Path(os.environ["SCALEQBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scaleqbench"


def cache_key(name: str, source: str, seed: int) -> str:
    info = dataset_info(name)
    ident = {"dataset": name, "protocol": info.protocol, "source": source, "seed": seed,
             "sizes": list(info.sizes), "builder_version": info.version}
    if info.train_sizes is not None:  # only then: every other dataset keeps its cache key
        ident["train_sizes"] = list(info.train_sizes)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(name: str, source: str, seed: int, cache_dir: str | os.PathLike | None = None
               ) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{name}-{source}-s{seed}-{cache_key(name, source, seed)}.pt"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Repeats scaleqbench.methods.disco.cache._atomic_write on purpose: methods may import only datasets.scaling and
# datasets imports no methods (tests/test_architecture.py), so neither can share the other's.
def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stamp(data: bytes, key: str) -> bytes:
    """The ``.sha256`` file's content: the payload's digest and the dataset's cache key."""
    return f"{_digest(data)} {key}\n".encode()


def _key_of(path: Path) -> str:
    """The cache key an entry's file name claims (its last ``-`` field)."""
    return path.stem.rsplit("-", 1)[-1]


def _read_intact(path: Path) -> bytes | None:
    """The cache file's bytes when it exists, matches its digest and holds the dataset its
    name says (the key stored beside the digest), else ``None``."""
    digest_file = path.with_suffix(".sha256")
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:  # a stamp of garbage bytes is a mismatch, not a crash
        stamp = digest_file.read_text(errors="replace").split() if digest_file.is_file() else []
    except OSError:
        stamp = []
    digest, key = (stamp + [None, None])[:2]
    if digest != _digest(data):
        log.warning("dataset cache %s is truncated or corrupt (checksum mismatch); rebuilding",
                    path)
        return None
    if key != _key_of(path):
        log.warning("dataset cache %s holds another dataset (key %s, expected %s: a file "
                    "copied or renamed into the cache); rebuilding", path, key, _key_of(path))
        return None
    return data


def _try_load(path: Path) -> ScaledDataset | None:
    data = _read_intact(path)
    if data is None:
        return None
    try:
        state = torch.load(io.BytesIO(data), weights_only=False)
    except Exception as exc:  # a valid digest of an unreadable payload: still never used
        log.warning("dataset cache %s cannot be read (%s); rebuilding", path, exc)
        return None
    # the key travels inside the payload too: a stamp file forged with the right name
    # still cannot pass another dataset off as this one
    if not isinstance(state, dict) or state.get("cache_key") != _key_of(path):
        log.warning("dataset cache %s holds another dataset (key %s inside, expected %s); "
                    "rebuilding", path, state.get("cache_key") if isinstance(state, dict)
                    else None, _key_of(path))
        return None
    try:
        return ScaledDataset.from_state(state["dataset"])
    except Exception as exc:
        log.warning("dataset cache %s cannot be read (%s); rebuilding", path, exc)
        return None


def load_or_build(name: str, source: str = "embedded", seed: int = 0,
                  data_root: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None,
                  use_cache: bool = True) -> tuple[ScaledDataset, Path | None]:
    """The dataset from the cache when it is there and intact, else built (and cached)."""
    path = cache_path(name, source, seed, cache_dir)
    if use_cache:
        ds = _try_load(path)
        if ds is not None:
            return ds, path
    ds = build(name, source=source, seed=seed, data_root=data_root)
    if not use_cache:
        return ds, None
    return ds, _store(ds, path)


def _store(ds: ScaledDataset, path: Path) -> Path | None:
    """Cache ``ds`` at ``path``; None (said in a warning) when it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({"cache_key": _key_of(path), "dataset": ds.to_state()}, buf)
        data = buf.getvalue()
        # digest first: a crash between the two writes leaves a mismatch, i.e. a rebuild
        _atomic_write(path.with_suffix(".sha256"), _stamp(data, _key_of(path)))
        _atomic_write(path, data)
    except OSError as exc:
        log.warning("could not write the dataset cache %s (%s); continuing without it", path, exc)
        return None
    return path


def ensure_cached(name: str, source: str = "embedded", seed: int = 0,
                  data_root: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Build and cache the dataset unless an intact cache file is there; returns its path.

    An intact file is only checked against its digest, not unpickled: a launcher can make
    sure every run will find its data (and fail early when a source is missing) without
    holding the dataset itself.
    """
    path = cache_path(name, source, seed, cache_dir)
    if _read_intact(path) is not None:  # (a damaged file is named there, once)
        return path
    return _store(build(name, source=source, seed=seed, data_root=data_root), path)
