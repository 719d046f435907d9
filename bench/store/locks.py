"""The two file locks of an experiment folder: the folder's own, and one per run's record.

Both are ``flock`` locks, which the kernel drops when their holder exits, so a
crashed process never leaves a folder or a run locked. The run store
(:class:`~bench.store.run_store.RunStore`) hands them out.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scaleqbench.bench.errors import ExperimentLockedError

__all__ = ["ExperimentLock", "run_lock"]

log = logging.getLogger(__name__)


class ExperimentLock:
    """An exclusive, non-blocking lock on an experiment folder (``.bench.lock``): one
    ``bench run`` or ``bench collect`` at a time decides what the folder's runs do."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / ".bench.lock"
        self._fh = None

    def __enter__(self) -> ExperimentLock:
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self._fh.seek(0)
            holder = self._fh.read().strip() or "unknown"
            self._fh.close()
            self._fh = None
            raise ExperimentLockedError(
                f"experiment folder {self.path.parent} is in use by another bench run "
                f"(pid {holder}); wait for it to finish or pass another --out") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


@contextmanager
def run_lock(out_dir: Path, run_id: str) -> Iterator[None]:
    """An exclusive (blocking) lock on one run's record, across processes and (through the
    file system) across the login and compute nodes."""
    path = Path(out_dir) / ".locks" / f"{run_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:  # closing the file releases the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as exc:  # a file system without locks: the window is milliseconds wide
            log.debug("no lock on %s (%s); checking and writing unlocked", path, exc)
        yield
