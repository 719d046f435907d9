"""Coarse-grained CPU parallelism for the Fourier layers: whole chunks per thread, not per op.

Why. A layer's work is many medium-sized operations (a few per chunk of maps and per
evaluation grid). Run one after another with PyTorch's intra-op threads, every one of them
is a fork/join of the thread team: on an idle machine that costs a little, but when another
busy process shares the cores, each join waits for whichever team thread the scheduler has
just preempted, a time slice per operation (measured on 2 cores, paper MNIST model: a
training step 5.7x slower beside a busy 2-thread neighbour process, and 12x slower than
the same step on one thread while other jobs loaded the machine).

How. :func:`run_tasks` hands whole tasks (a slice of maps, every operation on it) to a
small pool of worker threads, each of which computes with one intra-op thread. The only
join is the end of the layer; a preempted worker only delays its own task, and idle workers
take the remaining tasks (a shared queue). Tasks must write disjoint parts of their outputs.

Under a dispatch mode (``bench perf``'s FLOP counter) the tasks run on the calling thread,
where the mode sees them. Device-aware: on a GPU (or with one thread) the tasks run in
order on the calling thread; the layers then make one task of all their maps (see
:mod:`methods.fourier.chunking`), so the CUDA path launches no more kernels than before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

__all__ = ["even_slices", "run_tasks", "task_count", "workers"]

_pools: dict[int, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def _forget_pools() -> None:
    """A forked child has none of its parent's threads: it starts pools of its own."""
    global _lock
    _pools.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _single_threaded() -> None:
    """Worker start: one intra-op thread, set for this thread only (OpenMP's and MKL's thread
    counts are per calling thread)."""
    torch.set_num_threads(1)


def _pool(n: int) -> ThreadPoolExecutor:
    with _lock:
        if n not in _pools:
            main = torch.get_num_threads()
            pool = ThreadPoolExecutor(n, thread_name_prefix="fourier-task",
                                      initializer=_single_threaded)
            # start every worker now, then restore the process-wide default that
            # torch.set_num_threads also records for threads started later
            list(pool.map(lambda _: None, range(n)))
            torch.set_num_threads(main)
            _pools[n] = pool
        return _pools[n]


def workers(device: torch.device | str) -> int:
    """Worker threads the layers use on ``device``: the intra-op thread count on the CPU
    (called from the main thread), 1 elsewhere."""
    if torch.device(device).type != "cpu" or threading.current_thread().name.startswith(
            "fourier-task"):
        return 1
    return max(1, torch.get_num_threads())


def task_count(elements: int, budget: int, n_workers: int) -> int:
    """How many tasks to cut ``elements`` of work into: about ``budget`` elements each (a chunk
    that stays in cache), a multiple of ``n_workers`` so that none idles at the end."""
    if n_workers <= 1:
        return max(1, -(-elements // max(1, budget)))
    per = -(-elements // max(1, budget * n_workers))
    return n_workers * max(1, per)


def run_tasks(fn: Callable[[int], None], n_tasks: int, n_workers: int) -> None:
    """``fn(t)`` for ``t in range(n_tasks)``, under ``torch.no_grad`` (a worker thread starts
    with gradients enabled), on ``n_workers`` threads; the first error is raised here."""
    def task(t: int) -> None:
        with torch.no_grad():
            fn(t)

    # a dispatch mode (a FLOP counter, a profiler's) sees only its own thread's operations
    if n_workers <= 1 or n_tasks <= 1 or _get_current_dispatch_mode() is not None:
        for t in range(n_tasks):
            task(t)
        return
    for _ in _pool(n_workers).map(task, range(n_tasks)):
        pass


def even_slices(n: int, parts: int) -> Sequence[slice]:
    """``range(n)`` in ``parts`` consecutive slices of nearly equal length (none empty)."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]
