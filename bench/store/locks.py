"""The two file locks of an experiment folder: the folder's own, and one per run's record.

Both are ``flock`` locks, which the kernel drops when their holder exits, so a
crashed process never leaves a folder or a run locked. The folder's lock file is removed
when its holder lets go (a crash leaves it, holding no lock: the next run takes it). The
run store (:class:`~bench.store.run_store.RunStore`) hands them out. A third, the
*computing* lock (:func:`computing`), is held by a process for as long as it computes a
run without a job, so that ``bench status`` can tell a run in progress
(:func:`computing_holder`).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from scaleqbench.bench.errors import ExperimentLockedError, OutputNotWritableError

__all__ = ["ExperimentLock", "computing", "computing_holder", "run_lock"]

log = logging.getLogger(__name__)


class ExperimentLock:
    """An exclusive, non-blocking lock on an experiment folder (``.bench.lock``): one
    ``bench run`` or ``bench collect`` at a time decides what the folder's runs do."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / ".bench.lock"
        self._fh = None

    def __enter__(self) -> ExperimentLock:
        while True:  # until the file we lock is the one the folder names (see __exit__)
            self._fh = self._open()
            try:
                fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                self._refuse()
            if self._still_named():
                break
            self._fh.close()  # its holder removed it as we locked: lock the new one
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()
        return self

    def _open(self):
        try:
            return open(self.path, "a+")
        except OSError as exc:
            raise OutputNotWritableError.refused("--out", self.path.parent, exc) from None

    def _still_named(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self._fh.fileno()).st_ino
        except FileNotFoundError:
            return False

    def _refuse(self) -> None:
        self._fh.seek(0)
        holder = self._fh.read().strip() or "unknown"
        self._fh.close()
        self._fh = None
        raise ExperimentLockedError(
            f"experiment folder {self.path.parent} is in use by another bench run "
            f"(pid {holder}); wait for it to finish or pass another --out") from None

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            # removed while still held, so that no lock file stays behind; whoever opened the
            # old file meanwhile sees it is no longer named and locks the new one
            with suppress(OSError):
                self.path.unlink()
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


def _computing_file(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / ".locks" / f"{run_id}.computing"


@contextmanager
def computing(out_dir: Path, run_id: str) -> Iterator[None]:
    """Held while this process computes the run: an exclusive lock on
    ``.locks/<run-id>.computing``, which names this process (``pid host``). It never blocks
    and never stops a run: where it cannot be taken, the run runs without it."""
    path = _computing_file(out_dir, run_id)
    fh = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+")  # noqa: SIM115 - held until the run ends
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()} {socket.gethostname()}")
        fh.flush()
    except OSError as exc:  # a read-only folder, or held already: status cannot tell, no more
        log.debug("no computing lock on %s (%s)", path, exc)
        if fh is not None:
            fh.close()
        fh = None
    try:
        yield
    finally:
        if fh is not None:
            with suppress(OSError):  # removed while held: no file stays behind
                path.unlink()
            fh.close()


def computing_holder(out_dir: Path, run_id: str) -> tuple[str, str] | None:
    """``(pid, host)`` of the live process computing the run now (:func:`computing`), None
    when none is (the kernel drops the lock of a process that died)."""
    try:
        fh = open(_computing_file(out_dir, run_id))  # noqa: SIM115 - closed below
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                return None
            pid, _, host = fh.read().strip().partition(" ")
            return pid or "?", host
        return None  # nobody holds it (closing the file lets go of ours)
