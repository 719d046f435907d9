"""Where a run computes and with what arithmetic: the device, its precision and determinism.

* :func:`resolve_device` turns ``--device`` into a :class:`torch.device` (``auto``: CUDA
  when torch sees a GPU, else the CPU; MPS is refused, see :data:`MPS_REFUSAL`).
* :func:`device_facts` is what a record says of it: the device's name and its kind.
* :func:`numerics` sets, for the length of a run, what a run's precision and
  ``deterministic`` flag ask of torch (TF32, cuDNN's algorithm choice, deterministic
  kernels) and puts back what was there before; it collects the operations torch
  reports it ran without a deterministic kernel.
* :func:`training_autocast` is the bfloat16 autocast of ``--precision bf16``: training
  steps only; evaluation and every metric run in full precision.
* :func:`synchronize`, :func:`reset_peak_memory` and :func:`peak_memory_mb` always name
  the device (a bare ``torch.cuda.synchronize()`` makes a context on GPU 0 when a run
  is on ``cuda:1``).

The bitwise-reproducibility guarantees that follow are in docs/cli.md ("GPU runs").
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import warnings
from collections.abc import Iterator

import torch
import torch.utils.deterministic

from scaleqbench.bench.errors import BadArgumentError, BenchError

__all__ = ["MPS_REFUSAL", "STICKY_CUDA_ERRORS", "StuckDeviceError", "device_facts", "device_kind",
           "is_sticky_cuda_error", "numerics", "peak_memory_definition", "peak_memory_mb",
           "reset_peak_memory", "resolve_device", "synchronize", "training_autocast"]

#: why ``--device mps`` is refused: every metric of a record is computed in float64
MPS_REFUSAL = ("MPS has no float64, in which every metric is computed (records of "
               "different precisions would not compare); use --device cpu")

#: what a CUDA error that leaves the process's context unusable says (every later CUDA call
#: in the process fails too)
STICKY_CUDA_ERRORS = ("device-side assert", "illegal memory access", "illegal address",
                      "unspecified launch failure", "misaligned address",
                      "CUDA error: an illegal instruction")

# cuBLAS is deterministic only with a fixed workspace (NVIDIA's cuBLAS docs,
# "Results reproducibility"); read when cuBLAS starts, so set before the first matmul
_CUBLAS_WORKSPACE = ":4096:8"


class StuckDeviceError(BenchError):
    """A CUDA error left this process unable to use its GPU: a sweep running its runs in this
    process stops (its failed record is written first)."""

    def __init__(self, run_id: str, exc: BaseException):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        super().__init__(f"run {run_id} hit a CUDA error that leaves this process unable to "
                         f"use the GPU ({first}); its record says so. Re-run the same command "
                         "to go on with the other runs")
        self.run_id = run_id

    def __reduce__(self):  # a Slurm task's exception travels pickled
        return type(self), (self.run_id, RuntimeError(str(self)))


def resolve_device(name: str = "auto") -> torch.device:
    """The device ``--device name`` means here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "mps":
        raise BadArgumentError(f"--device {name}: {MPS_REFUSAL}")
    return device


def device_kind(device: torch.device | str) -> str:
    """``cpu`` or ``cuda`` (the kinds whose times a leaderboard never averages together)."""
    return torch.device(device).type


def device_facts(device: torch.device) -> dict[str, str]:
    """The record's ``device`` (the card's name, or the CPU's) and ``device_kind``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu ({platform.processor() or platform.machine()})"
    return {"device": name, "device_kind": device_kind(device)}


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_definition(device: torch.device) -> str:
    """What :func:`peak_memory_mb` measures on ``device`` (a column header names it)."""
    return "CUDA allocated" if device.type == "cuda" else "process RSS"


def peak_memory_mb(device: torch.device) -> float:
    """A run's peak memory, one definition per device kind: CUDA, the most bytes tensors held
    on the device since :func:`reset_peak_memory` (``max_memory_allocated``); CPU, the peak
    resident set of the process (Linux reports KiB), each run being its own process under
    Slurm and on GPUs (an upper bound when runs share one)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def is_sticky_cuda_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA error after which the process can run no more CUDA work."""
    text = str(exc)
    return "CUDA" in text and any(s in text for s in STICKY_CUDA_ERRORS)


class _Flags:
    """The global torch settings :func:`numerics` changes, read so they can be put back."""

    def __init__(self) -> None:
        self.matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
        self.cudnn_tf32 = torch.backends.cudnn.allow_tf32
        self.cudnn_deterministic = torch.backends.cudnn.deterministic
        self.cudnn_benchmark = torch.backends.cudnn.benchmark
        self.algorithms = torch.are_deterministic_algorithms_enabled()
        self.warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        self.fill = torch.utils.deterministic.fill_uninitialized_memory

    def restore(self) -> None:
        torch.backends.cuda.matmul.allow_tf32 = self.matmul_tf32
        torch.backends.cudnn.allow_tf32 = self.cudnn_tf32
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.use_deterministic_algorithms(self.algorithms, warn_only=self.warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = self.fill


@contextlib.contextmanager
def numerics(precision: str, deterministic: bool) -> Iterator[list[str]]:
    """Inside: TF32 only under ``precision == "tf32"``; with ``deterministic``, cuDNN's
    deterministic algorithms (no autotuning) and torch's deterministic kernels. Yields a
    list that fills with the operations torch reports having no deterministic kernel for
    (they ran anyway: a run is not refused for them, its record names them).
    """
    before = _Flags()
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # not needed for determinism (every buffer is written before it is read), and filling
    # each new buffer with NaN would cost a pass through memory per allocation
    torch.utils.deterministic.fill_uninitialized_memory = False
    found: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", UserWarning)
            yield found
        others = {}
        for w in seen:
            text = str(w.message)
            if "does not have a deterministic implementation" in text:
                op = text.split(" does not have")[0].strip()
                if op not in found:
                    found.append(op)
            else:  # not ours to swallow: said again, once each
                others.setdefault((w.category, text), w)
        for w in others.values():
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    finally:
        before.restore()


def training_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for a training step under ``--precision bf16``; else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
