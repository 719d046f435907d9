"""``bench perf --allocator``: each measurement of :mod:`bench.run.perf` in a fresh interpreter.

The CLI tunes the C allocator (:mod:`bench.run.cpu_memory`); a researcher's own
training script does not. To measure both (``bench perf --allocator system,tuned``),
every (round, method, size, allocator) runs in a fresh interpreter -- ``system``:
glibc's and PyTorch's defaults, as in a plain script; ``tuned``: after
``tune_cpu_allocator()`` -- the allocators interleaved within each round so that a
shared machine's load hits them alike. Rows then also carry::

    allocator       system | tuned
    rounds          how many fresh processes the medians are over
    train_step_s    the median over rounds of each process's median step time
    alloc_ratio     median over rounds of train_step_s / that of the first listed
                    allocator in the same round (system,tuned: the cost of no tuning)

A child process prints its rows as one JSON line after a marker; anything else it
prints (warnings, progress) is ignored, and a child that fails raises here with the
last line of its stderr.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

from scaleqbench.bench.stats import median_interval
from scaleqbench.bench.run.openmp_wait import plain_env
from scaleqbench.bench.run.perf import ALLOCATORS, method_label, run_perf

__all__ = ["run_perf_isolated"]

log = logging.getLogger(__name__)

_CHILD = ("import sys; from scaleqbench.bench.run.perf_isolated import _child_main; "
          "_child_main(sys.argv[1])")
_MARK = "PERF-ROWS "


def _child_env(allocator: str) -> dict[str, str]:
    env = dict(os.environ)
    if allocator == "system":  # as a plain script starts: no opt-in left behind by the CLI
        env.pop("THP_MEM_ALLOC_ENABLE", None)
        env = plain_env(env)
    return env


def _child_main(arg: str) -> None:
    """Entry point of one isolated measurement (``python -c _CHILD job-json``)."""
    job = json.loads(arg)
    tuned = False
    if job.pop("allocator") == "tuned":
        from scaleqbench.bench.run.cpu_memory import tune_cpu_allocator

        tuned = tune_cpu_allocator()
        if not tuned:
            log.warning("the environment keeps glibc's settings: 'tuned' runs untuned")
    rows = run_perf([(job.pop("method"), job.pop("kwargs"))], [job.pop("size")], progress=False,
                    **job)
    print(_MARK + json.dumps([dict(r, glibc_tuned=tuned) for r in rows]), flush=True)


def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(job)], text=True,
                          capture_output=True, env=_child_env(job["allocator"]))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"perf of {job['method']} at {job['size']} ({job['allocator']}) "
                           f"failed in its process: {tail}")
    return json.loads(lines[-1][len(_MARK):])[0]


def run_perf_isolated(methods_: Iterable[tuple[str, dict[str, Any]]], sizes: Iterable[int],
                      allocators: Iterable[str] = ALLOCATORS, rounds: int = 1,
                      progress: bool = True, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`run_perf` with every (round, method, size, allocator) in a fresh interpreter;
    medians over ``rounds`` and the ratio between allocators (see the module docstring).
    ``kwargs`` go to :func:`run_perf` (batch, repeats, warmup, config, device, ...)."""
    allocators, methods_, sizes = list(allocators), list(methods_), [int(s) for s in sizes]
    bad = [a for a in allocators if a not in ALLOCATORS]
    if bad or not allocators or rounds < 1:
        raise ValueError(f"allocators must be among {ALLOCATORS} and rounds >= 1")
    got: dict[tuple[int, int, str], list[dict[str, Any]]] = {}
    bar = tqdm(total=rounds * len(methods_) * len(sizes) * len(allocators), desc="perf",
               disable=not progress, leave=False)
    for _ in range(rounds):
        for mi, (name, kw) in enumerate(methods_):
            for size in sizes:
                for alloc in allocators:
                    bar.set_postfix_str(f"{method_label(name, kw)} @ {size}, {alloc}")
                    job = dict(kwargs, method=name, kwargs=kw, size=size, allocator=alloc)
                    got.setdefault((mi, size, alloc), []).append(_run_child(job))
                    bar.update()
    bar.close()
    return _aggregate(got, len(methods_), sizes, allocators, rounds)


def _aggregate(got: dict[tuple[int, int, str], list[dict[str, Any]]], n_methods: int,
               sizes: list[int], allocators: list[str], rounds: int) -> list[dict[str, Any]]:
    """One row per (method, size, allocator): medians over rounds (the step time's with its
    interval over the rounds' processes), and the ratio of each round's step time to the
    first allocator's in the same round."""
    med = statistics.median
    rows = []
    for mi in range(n_methods):
        for size in sizes:
            first = [r["train_step_s"] for r in got[(mi, size, allocators[0])]]
            for alloc in allocators:
                runs = got[(mi, size, alloc)]
                steps = [r["train_step_s"] for r in runs]
                iv = median_interval(steps)  # over the processes, as the median
                rows.append(dict(
                    runs[0], allocator=alloc, rounds=rounds, train_step_s=iv.median,
                    train_step_s_interval=[iv.lo, iv.hi], interval_coverage=iv.coverage,
                    train_step_s_rounds=steps,
                    infer_img_per_s=med(r["infer_img_per_s"] for r in runs),
                    peak_mem_mb=med(r["peak_mem_mb"] for r in runs),
                    alloc_ratio=med(t / f for t, f in zip(steps, first))))
    return rows
