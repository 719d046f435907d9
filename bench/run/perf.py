"""``bench perf``: training-step time, inference throughput and peak memory per method and size.

For every ``(method, create() overrides)`` and every input size, one row::

    method          label: the name, plus "[k=v,...]" when overrides are given
    size, batch     the input is (batch, in_channels, size, size)
    params          parameter count
    train_step_s    median over ``repeats`` timed rounds (after ``warmup`` untimed steps) of
                    forward + backward + optimizer step, with the method's own loss
                    (``recipes.loss_for(name, config)``) and optimiser (its recipe for
                    ``config``); each round times one step of every method in turn
    train_step_s_interval
                    ``[lo, hi]``: the median's distribution-free interval (two order
                    statistics, :func:`~bench.stats.median_interval`)
    timed_rounds    ``repeats``
    interval_coverage  the intervals' coverage (95 % or more from six rounds on, the CLI's
                    default; five rounds give ``[min, max]`` at 93.75 %)
    gflop           the step's counted work in 10^9 floating-point operations, forward and
                    backward (:mod:`bench.run.flops`: PyTorch's FLOP counter, matrix products
                    and convolutions, plus the FFTs at 5 N log2 N per complex transform of
                    length N); counted in a step of its own, untimed
    fft_gflop       the FFTs' part of ``gflop``
    gflop_per_s     gflop / train_step_s: the achieved rate
    infer_img_per_s batch / median time of one forward pass in eval mode, no grad
    peak_mem_mb     measured in one further training step of its own, after the timed ones
                    (the measurement must not perturb the timing); one definition per
                    device kind, named by ``peak_mem_def`` and in the table's header.
                    CUDA (``CUDA allocated``): ``torch.cuda.max_memory_allocated`` over that
                    step, model, optimiser state and batch included.
                    CPU (``RSS growth``): the peak growth of the process's resident set
                    (``/proc/self/statm``, sampled every millisecond by a thread) over its
                    level just before the step, taken after glibc's ``malloc_trim`` has
                    returned the allocator's free heap to the OS (otherwise the warm-up
                    leaves the step's working set resident and the growth reads ~0) and a
                    model that keeps buffers for its next step has released them (its
                    ``empty_cache()``, if it has one: the ``fourier`` workspace). It tracks
                    the step's activations, gradients and temporaries beyond model,
                    optimiser state and batch; it is ``nan`` where ``/proc`` is unavailable.
    peak_mem_def    what ``peak_mem_mb`` measures on this device (``CUDA allocated`` or
                    ``RSS growth``)
    device          where it ran
    implementation  how the model computes there, where it says (``fourier``: its ring
                    nonlinearity's CPU kernel, with the kernel's build, or tensor operations)
    input           the input policy: under ``pad`` / ``upsample`` a size-s image reaches
                    the model on the ``canvas`` (``published``: each method's own policy)

With ``contention=True`` (``bench perf --contention``) every round also times one step of
every method while a busy neighbour process computes on as many threads
(:mod:`bench.run.contention`), and rows carry::

    train_step_busy_s  median over rounds of that step's time
    contention_ratio   median over rounds of busy step time / quiet step time (the slowdown)
    contention_baseline  the same for a plain compute-bound loop in the same rounds
    contention_vs_baseline  median over rounds of the method's slowdown / the baseline's
                       (below 1: the method slowed less than plain compute-bound work)
    neighbour_threads  the neighbour's thread count

each median with its ``_interval`` as ``train_step_s``'s.

Inputs are band-limited random images (``fourier_resize`` of noise) with random
labels: timing does not depend on the data. Timings are wall-clock medians;
compare methods only within one run (the machine may be shared). Steps run in fp32
(TF32 off, as ``bench run``'s default precision) with cuDNN's autotuning on.

One fresh interpreter per measurement, to compare allocators: :mod:`bench.run.perf_isolated`.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from scaleqbench import methods
from scaleqbench.bench.run import recipes
from scaleqbench.bench.store.atomic_io import atomic_write_text
from scaleqbench.bench.run.contention import BusyNeighbour
from scaleqbench.bench.run.cpu_memory import release_free_heap
from scaleqbench.bench.run.devices import numerics, synchronize
from scaleqbench.bench.spec_parsing import format_method
from scaleqbench.bench.run.optimizer import build_optimizer
from scaleqbench.bench.run.perf_rounds import Subject, measure_size
from scaleqbench.bench.run.perf_table import format_perf_table
from scaleqbench.datasets.scaling import fourier_resize, to_canvas
from scaleqbench.methods.protocol import HoldsWorkspace, implementation_of

__all__ = ["ALLOCATORS", "format_perf_table", "method_label", "run_perf", "write_perf_json"]

#: what ``--allocator`` may name (:mod:`bench.run.perf_isolated`)
ALLOCATORS = ("system", "tuned")
#: what ``peak_mem_mb`` measures, by device kind (the module docstring)
PEAK_MEMORY = {"cuda": "CUDA allocated", "cpu": "RSS growth"}

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = Path("/proc/self/statm")


def method_label(name: str, kwargs: dict[str, Any]) -> str:
    """``name`` or ``name[k=v,...]`` (keys sorted), the spelling the CLI parses back."""
    return format_method(name, dict(kwargs))


def _rss_bytes() -> int:
    return int(_STATM.read_text().split()[1]) * _PAGE


class _RssPeak:
    """Samples the resident set size every ``interval`` s in a thread; ``peak - baseline`` in MB.

    The baseline is taken after :func:`~bench.cpu_memory.release_free_heap`, so the growth
    is the memory a step needs beyond the model, optimiser state and batch (activations,
    gradients, temporaries).
    """

    def __init__(self, interval: float = 1e-3):
        self.interval = interval
        self.available = _STATM.exists()
        self._stop = threading.Event()
        self.base = self.peak = 0

    def __enter__(self) -> _RssPeak:
        if self.available:
            gc.collect()
            release_free_heap()
            self.base = self.peak = _rss_bytes()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        if self.available:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20 if self.available else float("nan")


def _batch(g: torch.Generator, batch: int, in_channels: int, num_classes: int, size: int,
           policy: str, canvas: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Band-limited random images of ``size`` pixels on the ``canvas`` under ``policy``, and
    random labels (timing does not depend on the data)."""
    noise = torch.randn(batch, in_channels, 2 * size, 2 * size, generator=g)
    x = to_canvas(fourier_resize(noise.double(), size).float(), policy, canvas).to(dev)
    y = torch.randint(0, num_classes, (batch,), generator=g).to(dev)
    return x, y


def _subject(label: str, model: torch.nn.Module, loss_fn, opt, x: torch.Tensor,
             y: torch.Tensor, dev: torch.device) -> Subject:
    """The step, inference and memory measurement of one model on one batch."""
    def step() -> None:
        loss, _ = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer() -> None:
        with torch.no_grad():
            model(x)

    def memory() -> float:
        # in a step of its own: the sampler thread and the heap trim it needs (see _RssPeak)
        # would otherwise be timed too
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        if isinstance(model, HoldsWorkspace):
            model.empty_cache()  # buffers kept for the next step count as the step's too
        with _RssPeak() as rss:
            step()
            synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else rss.growth_mb

    return Subject(label, model, step, infer, memory)


def run_perf(methods_: Iterable[tuple[str, dict[str, Any]]], sizes: Iterable[int],
             batch: int = 128, repeats: int = 6, warmup: int = 2, config: str = "mnist",
             in_channels: int = 1, num_classes: int = 10, device: str = "cpu",
             progress: bool = True, seed: int = 0, input: str = "native",
             canvas: int | None = None, contention: bool = False) -> list[dict[str, Any]]:
    """Measure every (method, size); see the module docstring for the columns. The methods
    of one size are measured in alternating rounds (:mod:`bench.run.perf_rounds`);
    ``contention``: each round also times every step beside a busy neighbour process."""
    if repeats < 1 or warmup < 0 or batch < 1:
        raise ValueError("need repeats >= 1, warmup >= 0 and batch >= 1")
    dev = torch.device(device)
    dev_name = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                else f"cpu ({torch.get_num_threads()} threads)")
    methods_, sizes = list(methods_), [int(s) for s in sizes]
    canvas = canvas or max(sizes)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(sizes), desc="perf", disable=not progress, leave=False)
    with numerics("fp32", deterministic=False), \
            (BusyNeighbour(torch.get_num_threads()) if contention else nullcontext()) as nb:
        built = []
        for name, kwargs in methods_:
            torch.manual_seed(seed)
            model = methods.create(name, in_channels=in_channels, num_classes=num_classes,
                                   config=config, **kwargs).to(dev)
            opt, _ = build_optimizer(model, recipes.recipe_for(name, config))
            policy = methods.get_method(name).input if input == "published" else input
            g = torch.Generator().manual_seed(seed)
            batches = {s: _batch(g, batch, in_channels, num_classes, s, policy, canvas, dev)
                       for s in sizes}
            built.append((method_label(name, kwargs), model, recipes.loss_for(name, config),
                          opt, policy, batches))
        for size in sizes:
            bar.set_postfix_str(f"size {size}")
            subjects = [_subject(label, model, loss_fn, opt, *batches[size], dev)
                        for label, model, loss_fn, opt, _, batches in built]
            got = measure_size(subjects, repeats, warmup, dev, nb)
            for mi, ((label, model, _, _, policy, _), m) in enumerate(zip(built, got)):
                infer_s = m.pop("infer_s")
                rows.append({"_order": (mi, sizes.index(size)), "method": label, "size": size, "batch": batch,
                             "params": sum(p.numel() for p in model.parameters()),
                             **m, "infer_img_per_s": batch / infer_s,
                             "peak_mem_def": PEAK_MEMORY.get(dev.type, ""),
                             "device": dev_name, "input": policy, **implementation_of(model, dev)})
                log.info("perf %s size %d: step %.3f s, %.1f GFLOP/s", label, size,
                         m["train_step_s"], m["gflop_per_s"])
            bar.update()
        del built
    bar.close()
    rows.sort(key=lambda r: r["_order"])  # one method's sizes together, in the given orders
    return [{k: v for k, v in r.items() if k != "_order"} for r in rows]


def write_perf_json(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write the rows as JSON, atomically."""
    return atomic_write_text(path, json.dumps({"rows": rows, "torch": torch.__version__},
                                              indent=2) + "\n")
