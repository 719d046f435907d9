"""A finished record that cannot be written where it belongs is kept elsewhere, never dropped.

When ``runs/`` refuses a record after its run has trained (permissions changed
mid-run, a file in the way, a full disk), the record's JSON goes to the first
fallback folder that takes it: ``<experiment>/rescued/`` (a read-only ``runs/`` in a
writable folder), else ``<temp>/scaleqbench-rescued-<uid>/<experiment name>/`` (another
file system, when the experiment's is full). The error raised then names that file
and how to put it back; the CLI prints it as its one line and releases the lock.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import tempfile
from pathlib import Path

from scaleqbench.bench.errors import BenchError, DiskFullError, OutputNotWritableError
from scaleqbench.bench.store.atomic_io import atomic_write_text

__all__ = ["RecordNotWrittenError", "fallback_folders", "unwritten_record_error"]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class RecordNotWrittenError(OutputNotWritableError):
    """A run's record could not be written to ``runs/``; the message says where it is kept."""


def fallback_folders(experiment: Path) -> list[Path]:
    """Where a record that ``runs/`` refused is kept, in order of preference."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return [experiment / "rescued",
            Path(tempfile.gettempdir()) / f"scaleqbench-rescued-{uid}" / experiment.name]


def _keep(experiment: Path, name: str, text: str) -> Path | None:
    """``text`` written as ``name`` in the first fallback folder that takes it (a second
    rescue of the same run gets a time stamp, never replacing the first); None if none."""
    for folder in fallback_folders(experiment):
        target = folder / name
        if target.exists():
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            target = folder / f"{Path(name).stem}.{stamp}.json"
        try:
            return atomic_write_text(target, text)
        except OSError:
            continue
    return None


def unwritten_record_error(experiment: Path, path: Path, text: str, exc: OSError,
                           keep: bool = True) -> BenchError:
    """The one-line error for a record (JSON ``text``) that could not be written to ``path``
    (``exc``); with ``keep`` (a finished run) the record is first kept in a fallback folder,
    which the message names with the command that puts it back."""
    kept = _keep(experiment, path.name, text) if keep else None
    if kept is not None:
        how = (f"the finished record is kept at {kept}: once {path.parent} can be written, "
               f"`mv {kept} {path}` and re-run the same command")
    elif keep:
        how = "it could not be kept anywhere else either; the run will be recomputed"
    else:
        how = "pass a folder you can write"
    if isinstance(exc, DiskFullError) or getattr(exc, "errno", None) in _NO_SPACE:
        full = exc if isinstance(exc, DiskFullError) else DiskFullError(
            path, path.parent, exc.errno)
        err = DiskFullError(full.path, full.where, full.errno)
        err.args = (f"{full}; {how}",)  # the file system's line, then where the result is
        return err
    return RecordNotWrittenError(f"cannot write the record of run {path.stem} to {path} "
                                 f"({exc.strerror or exc}); {how}")
