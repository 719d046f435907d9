"""SIGTERM and SIGHUP as interrupts: ``kill``, a closing terminal or a job scheduler stopping
``bench run`` gets what Ctrl-C gets (finished records kept, the lock released, the resume
hint), with the shell's exit status for that signal (143, 129).

Only the command line opts in (:func:`sigterm_interrupts`, around the sweep), and only in
the main thread, where Python delivers signals; importing this module changes nothing. A
signal the process was started ignoring stays ignored: ``nohup bench run ...`` must survive
its terminal closing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["HANDLED", "Terminated", "exit_status", "sigterm_interrupts"]

#: the signals that stop a sweep as Ctrl-C does (SIGHUP: the terminal went away)
HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived. A ``KeyboardInterrupt``, so that every path that keeps
    finished records and cleans temporary files on Ctrl-C does the same for it."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def exit_status(exc: KeyboardInterrupt) -> int:
    """The shell's status for a process ended by the signal: 128 + its number (SIGINT for a
    plain Ctrl-C)."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT))


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated`, except one that is
    ignored (``nohup``), which stays so; the previous handlers are restored after it.
    Outside the main thread (no signal is delivered there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_terminated) for s in HANDLED
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
