"""Atomic file writes: the one place that writes a file a user keeps (records, tables, JSON,
checkpoints).

The content goes to a temporary file in the target's folder (same file system,
so the rename is atomic), is flushed and fsynced, then ``os.replace``-d over
the target. A reader therefore sees the old file or the new one, never a part;
on any failure (a full disk, Ctrl-C, an exception while serialising) the
temporary file is removed and the old target is left as it was.

A write that runs out of space (``ENOSPC``, or ``EDQUOT`` for a quota) raises
:class:`~bench.errors.DiskFullError`, which names the file system and the file:
the one line the CLI prints. ``torch.save`` reports a failed write as its own
``RuntimeError`` ("unexpected pos"), so the writes are watched and the file
system's own error is the one reported.

The temporary file is created with mode 0o666 less the umask, like a plain
``open(path, "w")``: ``tempfile.mkstemp`` would make every record 0o600,
unreadable to the rest of a group sharing a results folder.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from scaleqbench.bench.errors import DiskFullError

__all__ = ["atomic_torch_save", "atomic_write", "atomic_write_bytes", "atomic_write_text"]


def _create_temp(path: Path) -> tuple[int, Path]:
    """An exclusive new temporary file beside ``path``: ``(fd, its path)``."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # a name another writer holds: draw another
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class _WatchedFile:
    """A binary file that remembers the ``OSError`` of a failed ``write`` (torch.save replaces
    it by a ``RuntimeError`` of its own); everything else is the file's."""

    def __init__(self, fh: IO[bytes]):
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _mount_point(path: Path) -> Path:
    """The mount point of the file system that holds ``path`` (or would, once created)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _full_disk(path: Path, *errors: BaseException | None) -> DiskFullError | None:
    for err in errors:
        if isinstance(err, DiskFullError):
            return err
        if isinstance(err, OSError) and err.errno in _NO_SPACE:
            return DiskFullError(path, _mount_point(path.parent), err.errno)
    return None


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a binary temporary file that then
    replaces ``path``. Parent folders are created. Returns ``path``; a full disk raises
    :class:`~bench.errors.DiskFullError` (an ``OSError``), with no temporary file left."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path)
    except OSError as exc:
        full = _full_disk(path, exc)
        if full is None:
            raise
        raise full from exc
    watched: _WatchedFile | None = None
    try:
        with open(fd, "wb") as fh:
            watched = _WatchedFile(fh)
            write(watched)
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException as exc:  # Ctrl-C included: never leave a stray temporary file
        tmp.unlink(missing_ok=True)
        full = _full_disk(path, exc, watched.error if watched else None)
        if full is None:
            raise
        raise full from exc
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    # imported here: torch is heavy, and the JSON writers (records, leaderboards) need none of it
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))
