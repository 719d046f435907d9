"""SIGTERM as an interrupt: ``kill``, a closing terminal or a job scheduler stopping ``bench run``
gets what Ctrl-C gets (finished records kept, the resume hint), with exit status 143.

Only the command line opts in (:func:`sigterm_interrupts`, around the sweep), and only in
the main thread, where Python delivers signals; importing this module changes nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "exit_status", "sigterm_interrupts"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. A ``KeyboardInterrupt``, so that every path that keeps finished
    records and cleans temporary files on Ctrl-C does the same for it."""


def exit_status(exc: KeyboardInterrupt) -> int:
    """The shell's status for a process ended by the signal: 128 + SIGTERM or + SIGINT."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; the previous handler is restored
    after it. Outside the main thread (no signal is delivered there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
