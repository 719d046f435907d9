"""``bench perf``'s measurement of several methods at one input size, in alternating rounds.

Every method's model, loss, optimiser and batch are set up first (:class:`Subject`) and
warmed up; then each timed round takes one training step of every method in turn (and,
with a :class:`~bench.run.contention.BusyNeighbour`, one more of every method while the
neighbour computes), so that a shared machine's changing load falls on all methods alike.
The step time is the median over rounds; the contention ratio the median over rounds of
the busy step's time over the quiet one's of the same round, and the baseline the same
ratio for a plain compute-bound loop on the same threads, timed in the same rounds; each
method's ratio is also set against the baseline's of the same round. Every median carries
its distribution-free interval (:func:`~bench.stats.median_interval`: between two
order statistics, 95 % from six rounds on, ``[min, max]`` below with the coverage it
has), because a shared machine's timings are skewed and their outliers real. After the rounds, each
method's work is counted in one further step (:func:`~bench.run.flops.count_flops`: the
counter slows what it watches, so it is never timed), its memory measured in another
(``bench.run.perf``'s docstring) and its inference timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from scaleqbench.bench.run.contention import BusyNeighbour, baseline_loop
from scaleqbench.bench.run.devices import synchronize
from scaleqbench.bench.run.flops import count_flops
from scaleqbench.bench.stats import median_interval

__all__ = ["Subject", "measure_size"]


@dataclass
class Subject:
    """One method under measurement at one size: its training step and inference pass."""

    label: str
    model: torch.nn.Module
    step: Callable[[], None]  # forward + backward + optimizer step on the batch
    infer: Callable[[], None]  # one forward pass, eval mode, no grad
    memory: Callable[[], float]  # peak memory (MB) of one further step


def _timed(fn: Callable[[], None], sync: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def _rounds(steps: list[Callable[[], None]], repeats: int, sync,
            neighbour: BusyNeighbour | None) -> tuple[list[list[float]], list[list[float]]]:
    """Times per step, quiet and (with a neighbour) busy, one of each per round."""
    quiet: list[list[float]] = [[] for _ in steps]
    busy: list[list[float]] = [[] for _ in steps]
    for _ in range(repeats):
        for i, step in enumerate(steps):
            quiet[i].append(_timed(step, sync))
        if neighbour is not None:
            with neighbour.busy():
                for i, step in enumerate(steps):
                    busy[i].append(_timed(step, sync))
    return quiet, busy


def _median(values: list[float], key: str) -> dict[str, Any]:
    """``key``: the median of ``values``; ``key_interval``: its ``[lo, hi]``."""
    iv = median_interval(values)
    return {key: iv.median, f"{key}_interval": [iv.lo, iv.hi]}


def _busy_columns(quiet: list[float], busy: list[float], baseline: list[float],
                  threads: int) -> dict[str, Any]:
    """The busy step's columns: its time, the slowdown per round, and the slowdown over the
    baseline's of the same round (1: slowed as much as plain compute-bound work)."""
    ratios = [b / q for b, q in zip(busy, quiet)]
    return {**_median(busy, "train_step_busy_s"), **_median(ratios, "contention_ratio"),
            **_median(baseline, "contention_baseline"),
            **_median([r / b for r, b in zip(ratios, baseline)], "contention_vs_baseline"),
            "neighbour_threads": threads}


def measure_size(subjects: list[Subject], repeats: int, warmup: int, dev: torch.device,
                 neighbour: BusyNeighbour | None = None) -> list[dict[str, Any]]:
    """One dict per subject: ``train_step_s``, ``infer_s`` (median time of one forward pass),
    ``gflop``, ``fft_gflop``, ``gflop_per_s``, ``peak_mem_mb``, ``timed_rounds`` and
    ``interval_coverage`` and, with a neighbour, ``train_step_busy_s``, ``contention_ratio``,
    ``neighbour_threads``, ``contention_baseline`` (the same ratio for
    :func:`~bench.run.contention.baseline_loop`) and ``contention_vs_baseline``; each median
    ``m`` with its ``m_interval`` (module docstring)."""
    sync = lambda: synchronize(dev)  # noqa: E731
    for s in subjects:
        s.model.train()
        for _ in range(warmup):
            s.step()
        if neighbour is not None and warmup:
            with neighbour.busy():  # a first step under load may differ too
                s.step()
    sync()
    # with a neighbour, the yardstick's loop runs in the same rounds, after the methods
    steps = [s.step for s in subjects] + ([baseline_loop()] if neighbour is not None else [])
    quiet, busy = _rounds(steps, repeats, sync, neighbour)
    baseline = ([b / q for b, q in zip(busy[-1], quiet[-1])] if neighbour is not None
                else None)
    out = []
    for i, s in enumerate(subjects):
        flops, fft = count_flops(s.step)
        step = median_interval(quiet[i])
        row = {"train_step_s": step.median, "train_step_s_interval": [step.lo, step.hi],
               "gflop": flops / 1e9, "fft_gflop": fft / 1e9,
               "gflop_per_s": flops / 1e9 / step.median if step.median > 0 else float("nan"),
               "peak_mem_mb": s.memory(), "timed_rounds": repeats,
               "interval_coverage": step.coverage}
        if neighbour is not None:
            row.update(_busy_columns(quiet[i], busy[i], baseline, neighbour.threads))
        s.model.eval()
        for _ in range(warmup):
            s.infer()
        sync()
        row["infer_s"] = statistics.median(_timed(s.infer, sync) for _ in range(repeats))
        s.model.train()
        out.append(row)
    return out
