"""A busy neighbour process for ``bench perf --contention``: the same step timed while another
process keeps the cores busy.

:class:`BusyNeighbour` starts one child process that computes with as many intra-op threads
as this process uses (a loop of cache-resident matrix products: CPU-bound, like another
training job's threads) whenever it is told to, and idles on an event otherwise. Within
:meth:`BusyNeighbour.busy` the child is known to be computing: the parent waits on the
child's own signal that it has started its loop (and that the loop has stopped, on the
way out), never on a sleep. :meth:`BusyNeighbour.close` (or leaving the ``with`` block)
stops and joins it; a child that does not stop is terminated.

:func:`baseline_loop` is a yardstick for the slowdowns: plain compute-bound work (matrix
products, the neighbour's own kind) on this process's threads, timed in the same rounds.
Beside a neighbour that keeps as many threads busy, the scheduler gives each thread its share
of the cores, so a process that keeps all of its threads computing slows by about
``(ours + theirs) / cores`` -- 2x for two threads against two on two cores -- plus what it
loses waiting for a preempted thread at each join. The loop's slowdown says how harsh the
machine is at the moment: on the 2-core reference machine it ranged from 2.2x to 2.6x on a
day when ``fourier`` slowed 1.9-2.1x.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from scaleqbench.bench.run.openmp_wait import plain_env

__all__ = ["BusyNeighbour", "baseline_loop"]

#: seconds to wait for the child to stop before it is killed
STOP_TIMEOUT = 60.0

#: the child: a control thread reads commands (``run``, ``pause``; end of input: exit) from
#: stdin; the main thread multiplies matrices while told to run and says ``running`` once it
#: computes and ``idle`` once it has stopped, on stdout
_CHILD = r"""
import sys, threading
import torch
threads, size = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
a, b, c = torch.randn(size, size), torch.randn(size, size), torch.empty(size, size)
torch.mm(a, b, out=c)
run, stop = threading.Event(), threading.Event()
def control():
    for line in sys.stdin:
        (run.set if line.strip() == "run" else run.clear)()
    stop.set()
    run.set()
threading.Thread(target=control, daemon=True).start()
print("ready", flush=True)
while True:
    run.wait()
    if stop.is_set():
        break
    print("running", flush=True)
    while run.is_set() and not stop.is_set():
        torch.mm(a, b, out=c)
    print("idle", flush=True)
"""


class BusyNeighbour:
    """A child process that keeps ``threads`` cores busy inside :meth:`busy` (module docstring).

    ``size``: the side of its square matrices (small enough to stay in cache).
    """

    def __init__(self, threads: int, size: int = 256):
        self.threads = threads
        # the neighbour is someone else's process: OpenMP's default waiting, not the CLI's
        self._proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(threads), str(size)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env=plain_env(os.environ))
        try:
            self._expect("ready")
        except RuntimeError:
            self.close()
            raise

    def _expect(self, word: str) -> None:
        line = self._proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"the busy neighbour process said {line or 'nothing'!r}, "
                               f"not {word!r} (exit status {self._proc.poll()})")

    def _say(self, word: str) -> None:
        self._proc.stdin.write(word + "\n")
        self._proc.stdin.flush()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def is_alive(self) -> bool:
        return self._proc.poll() is None

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Inside: the neighbour is computing (it said so); on exit it has stopped again."""
        self._say("run")
        self._expect("running")
        try:
            yield
        finally:
            self._say("pause")
            self._expect("idle")

    def close(self) -> None:
        """Stop the child and wait for it (killed if it does not stop)."""
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()  # end of input: the child leaves its loop
            except BrokenPipeError:
                pass
        try:
            self._proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()

    def __enter__(self) -> BusyNeighbour:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def baseline_loop(target_s: float = 0.1, size: int = 1024) -> Callable[[], None]:
    """A compute-bound loop of ``size`` x ``size`` matrix products on this process's intra-op
    threads, sized to take about ``target_s`` on idle cores (module docstring: the yardstick)."""
    import torch

    a, out = torch.randn(size, size), torch.empty(size, size)

    def run(n: int) -> None:
        for _ in range(n):
            torch.mm(a, a, out=out)

    run(8)  # warm
    t0 = time.perf_counter()
    run(32)
    per = max((time.perf_counter() - t0) / 32, 1e-7)
    n = max(32, round(target_s / per))
    return lambda: run(n)
