"""The on-disk cache of fitted DISCO proxy bases: fitted once per configuration, reused after.

Fitting a basis (:func:`methods.disco.fit.fit_proxy_basis`) is a build step, like
building a dataset: ``<cache>/disco-bases/disco-k{size}-e{eff}-{key}.pt`` holds
the proxy basis of one configuration, keyed by a hash of everything that
defines it (size, effective size, scales, fit options, the fit's version). As
for datasets, ``<cache>`` is ``$SCALEQBENCH_CACHE``, else
``$XDG_CACHE_HOME/scaleqbench``, else ``~/.cache/scaleqbench``. The file is written
atomically (temporary file, fsync, rename) after its SHA-256 digest
(``.sha256``); on load the digest is checked, and a truncated or corrupt file is
reported and refitted, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from scaleqbench.methods.disco.fit import FitOptions, check_scales, fit_proxy_basis

__all__ = ["FIT_VERSION", "basis_cache_dir", "basis_key", "basis_path", "load_or_fit"]

log = logging.getLogger(__name__)

#: bump when the fit's definition changes: old cache entries are then never read
FIT_VERSION = 1


def basis_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of cached bases: ``<cache>/disco-bases`` (module docstring)."""
    if cache_dir is not None:
        root = Path(cache_dir)
    elif os.environ.get("SCALEQBENCH_CACHE"):
        root = Path(os.environ["SCALEQBENCH_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scaleqbench"
    return root / "disco-bases"


def basis_key(size: int, effective_size: int, scales: Sequence[float], options: FitOptions) -> str:
    """16 hex digits of the SHA-256 of the configuration (scales by their exact float repr)."""
    ident = {"size": size, "effective_size": effective_size,
             "scales": [repr(float(s)) for s in scales], "options": asdict(options),
             "version": FIT_VERSION}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def basis_path(size: int, effective_size: int, scales: Sequence[float], options: FitOptions,
               cache_dir: str | os.PathLike | None = None) -> Path:
    key = basis_key(size, effective_size, scales, options)
    return basis_cache_dir(cache_dir) / f"disco-k{size}-e{effective_size}-{key}.pt"


# Repeats scaleqbench.datasets.cache._atomic_write on purpose: methods may import only datasets.scaling and
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


def _try_load(path: Path, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The cached proxy when the file is there, matches its digest and has the right shape."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    digest_file = path.with_suffix(".sha256")
    expected = digest_file.read_text().strip() if digest_file.is_file() else None
    if expected != hashlib.sha256(data).hexdigest():
        log.warning("DISCO basis cache %s is truncated or corrupt (checksum mismatch); refitting",
                    path)
        return None
    try:
        proxy = torch.load(io.BytesIO(data), weights_only=True)["proxy"]
    except Exception as exc:  # a valid digest of an unreadable payload: still never used
        log.warning("DISCO basis cache %s cannot be read (%s); refitting", path, exc)
        return None
    if tuple(proxy.shape) != shape or proxy.dtype != torch.float64:
        log.warning("DISCO basis cache %s holds a %s %s tensor, expected %s; refitting",
                    path, proxy.dtype, tuple(proxy.shape), shape)
        return None
    return proxy


def load_or_fit(size: int, effective_size: int, scales: Sequence[float],
                options: FitOptions = FitOptions(), cache_dir: str | os.PathLike | None = None,
                use_cache: bool = True) -> torch.Tensor:
    """The proxy basis ``(eff^2, S, size, size)`` (float64) of a configuration: from the cache
    when it is there and intact, else fitted (and cached)."""
    scales = check_scales(size, effective_size, scales)
    shape = (effective_size ** 2, len(scales), size, size)
    path = basis_path(size, effective_size, scales, options, cache_dir)
    if use_cache:
        proxy = _try_load(path, shape)
        if proxy is not None:
            return proxy
    start = time.perf_counter()
    result = fit_proxy_basis(size, effective_size, scales, options)
    log.info("fitted the DISCO basis k=%d eff=%d scales=%s in %.1f s (loss %s)", size,
             effective_size, scales, time.perf_counter() - start,
             f"{result.losses[-1]:.6g}" if result.losses else "n/a: integer scales only")
    if not use_cache:
        return result.proxy
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({"proxy": result.proxy, "losses": list(result.losses),
                    "size": size, "effective_size": effective_size, "scales": scales,
                    "options": asdict(options), "version": FIT_VERSION}, buf)
        data = buf.getvalue()
        # digest first: a crash between the two writes leaves a mismatch, i.e. a refit
        _atomic_write(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest().encode())
        _atomic_write(path, data)
    except OSError as exc:
        log.warning("could not write the DISCO basis cache %s (%s); continuing without it",
                    path, exc)
    return result.proxy
