"""The errors a user can cause, one type per failure; the CLI prints their message on one line.

Each message says what was wrong and what to do. Errors raised by ``methods``
and ``datasets`` (unknown names, missing sources) are mapped onto these by
:func:`user_error_types`. A misspelt name gets its suggestion from :func:`did_you_mean`,
the same wherever ``bench`` refuses a name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to ``value``, else ``""``."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class BenchError(Exception):
    """Base class: a user error with a one-line message."""

    exit_code = 2


class BadArgumentError(BenchError):
    """A malformed command-line value (size list, seed list, method options...)."""


class UnknownNameError(BenchError):
    """An unknown method, dataset, preset or configuration."""


class DataSourceError(BenchError):
    """A missing or corrupt data source."""


class CheckpointError(BenchError):
    """A file given as a checkpoint that is missing or is not a scaleqbench checkpoint."""


class OutputNotWritableError(BenchError):
    """The output folder cannot be created or written."""

    @classmethod
    def refused(cls, flag: str, folder: object, exc: OSError) -> OutputNotWritableError:
        """The system refused a write into ``folder`` (given as ``flag``) with ``exc``."""
        return cls(f"cannot write to {flag} {folder} ({exc.strerror or exc}); pass a folder "
                   "you can write")


class ExperimentLockedError(BenchError):
    """Another ``bench run`` holds the experiment folder."""

    exit_code = 3


class LauncherError(BenchError):
    """The launcher's backend refused the jobs or cannot be reached (e.g. Slurm is down)."""


class NoRecordsError(BenchError):
    """A folder with no run records where some were expected."""


class CorruptRecordError(BenchError):
    """A run record file that is not a readable record (truncated, not JSON, wrong fields).

    The message names the file and what is wrong; each reader adds what it does about it.
    """

    def __init__(self, path: object, reason: str):
        super().__init__(f"{path} is not a readable run record ({reason})")
        self.path, self.reason = path, reason


class RecordSchemaError(CorruptRecordError):
    """A run record of a schema version this scaleqbench cannot read (written by a newer one)."""


class UnreadableRecordsError(BenchError):
    """``--strict``: some record files could not be read (each was named in a warning)."""


class DiskFullError(BenchError, OSError):
    """A write ran out of space (ENOSPC) or quota (EDQUOT); still an ``OSError`` for callers
    that handle any failed write. The message names the file system and the file."""

    exit_code = 4

    def __init__(self, path: object, where: object, errno_: int):
        BenchError.__init__(self, f"no space left on {where} while writing {path}; free some "
                            "space there or pass an --out on another file system")
        self.path, self.where, self.errno = path, where, errno_

    def __reduce__(self):  # a Slurm task's exception travels pickled
        return type(self), (self.path, self.where, self.errno)


class MemoryLimitError(BenchError):
    """A measurement that would need more memory than the machine has free."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss (recorded as a failed run, not a user error)."""

    def __init__(self, epoch: int, step: int, value: float):
        super().__init__(f"non-finite loss {value} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.value = epoch, step, value


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception type the CLI reports as a one-line user error."""
    from scaleqbench.datasets import SourceError, UnknownDatasetError
    from scaleqbench.methods import UnknownConfigError, UnknownMethodError

    return (BenchError, SourceError, UnknownDatasetError, UnknownMethodError, UnknownConfigError)
