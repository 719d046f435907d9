"""Bindings of the ring nonlinearity's CPU kernel (``_ring_native.cpp``, built at install), and
what the bindings of every Fourier kernel share: the one library they are built into
(:func:`kernel_library`), :func:`status`, and :func:`call_tasks`, which runs a call's tasks.

The kernel computes what :class:`~methods.fourier.grid_rings.GridRings` computes with tensor
operations -- the grids of every evaluation synthesised from the spectrum, the norm's affine,
ReLU, the max-pool, the analysis of each grid's rings, and the transpose of all of it -- one
tile of maps at a time in the core's cache, and synthesises the grids again in backward
instead of keeping them (see the source's header). It serves the CPU, float32 and float64,
and ReLU (the published configurations' activation); every other case -- another
activation, a GPU, an install without a C++ compiler -- takes the tensor path, which is the
same function. :func:`status` says which applies, and ``bench perf`` reports it.

Threads: a call cuts the maps into slices (whole tiles, :data:`TASKS_PER_WORKER` per thread),
the tasks that :func:`call_tasks` runs on PyTorch's own OpenMP team (see ``kernels.h``), or,
in a build without OpenMP, on :func:`~methods.fourier.parallel.run_tasks`' workers.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util

import torch

from scaleqbench.methods.fourier.basis import real_analysis, real_synthesis, ring_count, ring_schedule
from scaleqbench.methods.fourier.parallel import even_slices, run_tasks, workers

__all__ = ["NativePlan", "as_operand", "available", "call_tasks", "declare_entries",
           "kernel_library", "mask_buffer", "native_plan", "operand", "pointer", "run_backward",
           "run_forward", "status", "usable", "uses_openmp"]

_MODULE = "scaleqbench.methods.fourier._ring_native"
_P, _I64 = ctypes.c_void_p, ctypes.c_int64
#: tasks per worker: a preempted worker delays only its share of a slice, not the layer
TASKS_PER_WORKER = 8
_WHAT = "the ring nonlinearity's CPU kernel"


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or spec.origin is None:
        return None
    lib = ctypes.CDLL(spec.origin)
    declare_entries(lib, ("rn_forward", "rn_backward"), _Args)
    return lib


@functools.lru_cache(maxsize=None)
def kernel_library(entries: tuple[str, ...], args: type) -> ctypes.CDLL | None:
    """The library with kernel ``entries`` declared (taking the operands ``args``), or None
    where it is not built or was built without them."""
    lib = _library()  # one library holds every kernel
    if lib is None or not all(hasattr(lib, f"{entry}_f32") for entry in entries):
        return None
    declare_entries(lib, entries, args)
    return lib


def declare_entries(lib: ctypes.CDLL, entries: tuple[str, ...], args: type) -> None:
    """The argument types of kernel ``entries`` (both dtypes, per slice and per call's tasks)
    taking the operands ``args``."""
    for entry in entries:
        for suffix in ("f32", "f64"):
            one = getattr(lib, f"{entry}_{suffix}")
            one.argtypes, one.restype = [ctypes.POINTER(args), _I64, _I64], ctypes.c_int
            tasks = getattr(lib, f"{entry}_tasks_{suffix}")
            tasks.argtypes = [ctypes.POINTER(args), ctypes.POINTER(_I64), _I64, ctypes.c_int]
            tasks.restype = ctypes.c_int


def available() -> bool:
    """Whether the kernel was built with this install."""
    return _library() is not None


def status() -> str:
    """One line on the kernels: built or not, with which instruction set, on which threads."""
    lib = _library()
    if lib is None:
        return ("not built (the install compiled no kernel: no C++ compiler, or the build "
                "failed): the tensor path runs")
    isa = "AVX2+FMA" if lib.rn_vectorised() else "portable (no AVX2+FMA on this CPU)"
    threads = "OpenMP tasks" if lib.rn_openmp() else "thread pool (built without OpenMP)"
    return f"built, {isa}, {threads}"


def usable(spec: torch.Tensor, relu: bool, param_dtype: torch.dtype | None = None) -> bool:
    """Whether the kernel computes a layer on ``spec``: CPU, float32/64, ReLU, parameters (if
    any) of the spectrum's dtype, built."""
    return (relu and spec.device.type == "cpu" and spec.dtype in (torch.float32, torch.float64)
            and param_dtype in (None, spec.dtype) and available())


class NativePlan:
    """The kernel's plan at one input size: the int64 header and evaluations, and the
    synthesis and analysis matrices of every evaluation in one buffer (see the source)."""

    def __init__(self, n: int, base: int, pool: int, dtype: torch.dtype):
        sched = ring_schedule(n, base, pool)
        self.kin = 2 * max(band for _, band, _ in sched) + 1
        self.kout = 2 * ring_count(n // pool) + 1
        self.tile = _library().rn_tile(int(dtype == torch.float64))  # maps per tile: the kernel's
        mats, rows, at = [], [], 0
        for r, (g, band, j) in enumerate(sched):
            offs = []
            for m in (*_halves(g, band), real_analysis(g // pool, j)):
                for part in (m, m.T):
                    offs.append(at)
                    mats.append(part.contiguous().reshape(-1))
                    at += part.numel()
            ka = 2 * j + 1
            rows.append([g, band, int(r == 0), j, offs[0], offs[2], offs[1], offs[3], offs[4],
                         offs[5], ka])
        self.maxg = max(g for g, _, _ in sched)
        self.pool = pool
        #: bytes of ReLU mask forward keeps per tile of maps (pool 1: one bit per grid point)
        self.mask_bytes = sum(g * g for g, _, _ in sched) * self.tile // 8 if pool == 1 else 0
        header = [len(sched), self.kin, self.kout, self.maxg, pool, at]
        self.ints = torch.tensor(header + [v for row in rows for v in row], dtype=torch.int64)
        self.mats = torch.cat(mats).to(dtype)
        self.evaluations = len(sched)
        self.n, self.base = n, base
        synth = sum(_synthesis_macs(g, band) for g, band, _ in sched)
        analysis = sum(_analysis_macs(g // pool, 2 * j + 1, r == 0)
                       for r, (g, _, j) in enumerate(sched))
        #: floating-point operations per map (2 per multiply-add of the kernel's products;
        #: its elementwise work counts 0, as PyTorch's FLOP counter counts): forward, and
        #: backward (the transposes, and the synthesis again where no mask is kept)
        self.flops_forward = 2 * (synth + analysis)
        self.flops_backward = 2 * (analysis + synth * (1 if self.mask_bytes else 2))


def _synthesis_macs(g: int, band: int) -> int:
    """Multiply-adds of one grid's synthesis by halves (its transpose has as many): the
    halves' rows times the spectrum block's columns, then the quadrant products."""
    nc, ns, he, ho = band + 1, band, g // 2 + 1, (g + 1) // 2 - 1
    return (2 * band + 1 + he + ho) * (he * nc + ho * ns)


def _analysis_macs(mo: int, ka: int, base: bool) -> int:
    """Multiply-adds of one grid's analysis (pooled size ``mo``, ``ka`` analysis rows): the
    whole leading block for the base grid, else ring ``j``'s rows and columns."""
    if base:
        return ka * mo * mo + ka * ka * mo
    return 4 * mo * mo + 2 * ka * mo + 2 * (ka - 2) * mo


def _halves(g: int, band: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthesis' halves (see the kernel's header): ``SC``, rows ``0 .. g // 2`` of the
    constant and cosine columns, and ``SS``, rows ``1 .. (g - 1) // 2`` of the sine columns."""
    s = real_synthesis(g, band)
    even = [0] + list(range(1, 2 * band, 2))
    return s[:g // 2 + 1, even], s[1:(g + 1) // 2, 2::2]


@functools.lru_cache(maxsize=256)
def native_plan(n: int, base: int, pool: int, dtype: torch.dtype) -> NativePlan:
    return NativePlan(n, base, pool, dtype)


#: an absent optional operand of a kernel's custom operator (the operators take tensors)
_ABSENT = torch.empty(0)


def as_operand(t: torch.Tensor | None) -> torch.Tensor:
    """An optional operand as a kernel operator takes it: ``t``, or an empty tensor for None."""
    return _ABSENT if t is None else t


def operand(t: torch.Tensor) -> torch.Tensor | None:
    """The operand back from an operator's argument: None for an empty tensor."""
    return t if t.numel() else None


def pointer(t: torch.Tensor | None) -> int | None:
    """What a kernel's operand struct holds for ``t``: its data, or null where absent."""
    return None if t is None or not t.numel() else t.data_ptr()


def _slices(nb: int, tile: int) -> list[tuple[int, int]]:
    """Slices of maps for the workers: whole tiles each (only the last one may be partial)."""
    tiles = -(-nb // tile)
    parts = workers("cpu") * TASKS_PER_WORKER
    return [(sl.start * tile, min(sl.stop * tile, nb)) for sl in even_slices(tiles, parts)]


def call_tasks(lib: ctypes.CDLL, entry: str, args: ctypes.Structure, dtype: torch.dtype,
               bounds: list[int], what: str) -> None:
    """``entry`` of ``lib`` (a kernel entry, declared, without its ``_f32``/``_f64``) on the tasks
    ``[bounds[t], bounds[t + 1])``: on PyTorch's own OpenMP team where the library was built
    with OpenMP (see ``kernels.h``), else on :func:`~methods.fourier.parallel.run_tasks`'
    workers (``ctypes`` releases the GIL for each call). ``what`` names the kernel in the
    error a failed allocation raises."""
    suffix = "f64" if dtype == torch.float64 else "f32"
    n, threads = len(bounds) - 1, workers("cpu")
    if uses_openmp(lib):
        failed = getattr(lib, f"{entry}_tasks_{suffix}")(
            ctypes.byref(args), (_I64 * len(bounds))(*bounds), n, threads)
    else:
        fn, errors = getattr(lib, f"{entry}_{suffix}"), []
        run_tasks(lambda t: errors.append(fn(ctypes.byref(args), bounds[t], bounds[t + 1])),
                  n, threads)
        failed = any(errors)
    if failed:
        raise MemoryError(f"{what} could not allocate its buffers")


def uses_openmp(lib: ctypes.CDLL) -> bool:
    """Whether :func:`call_tasks` runs the tasks on the OpenMP team (the build has OpenMP)."""
    return bool(lib.rn_openmp())


def _bounds(nb: int, tile: int) -> list[int]:
    return [lo for lo, _ in _slices(nb, tile)] + [nb]


def mask_buffer(plan: NativePlan, nb: int) -> torch.Tensor | None:
    """What forward keeps for backward of ``nb`` maps: ReLU's mask (pool 1), or None (the
    grids are synthesised again in backward)."""
    if not plan.mask_bytes:
        return None
    return torch.empty(-(-nb // plan.tile) * plan.mask_bytes, dtype=torch.uint8)


class _Args(ctypes.Structure):
    """The kernel's ``Args`` (see the source): one call's operands."""

    _fields_ = [("plan", _P), ("mats", _P), ("spec", _P), ("sa", _I64), ("sb", _I64),
                ("gamma", _P), ("beta", _P), ("channels", _I64), ("eps", ctypes.c_double),
                ("z", _P), ("gz", _P), ("za", _I64), ("zb", _I64), ("gspec", _P),
                ("ggamma", _P), ("gbeta", _P), ("mask", _P)]


def _args(plan: NativePlan, spec: torch.Tensor, gamma: torch.Tensor | None,
          beta: torch.Tensor | None, channels: int, eps: float, out: torch.Tensor,
          mask: torch.Tensor | None, **grads: torch.Tensor | None) -> _Args:
    nb = spec.shape[2]
    return _Args(plan=pointer(plan.ints), mats=pointer(plan.mats), spec=pointer(spec),
                 sa=spec.shape[1] * nb, sb=nb, gamma=pointer(gamma), beta=pointer(beta),
                 channels=channels, eps=eps, za=out.shape[1] * nb, zb=nb, mask=pointer(mask),
                 **{k: pointer(v) for k, v in grads.items()})


def run_forward(plan: NativePlan, spec: torch.Tensor, gamma: torch.Tensor | None,
                beta: torch.Tensor | None, eps: float, z: torch.Tensor,
                mask: torch.Tensor | None) -> None:
    """``z`` (``(K', K', N)``, contiguous) from ``spec`` (``(K, K, N)``, contiguous, maps
    ``(b, c)`` in order) and the norm's affine per evaluation and channel (``(E, C)``, or
    None: no norm); ``mask`` (:func:`mask_buffer`) receives ReLU's mask."""
    args = _args(plan, spec, gamma, beta, gamma.shape[1] if gamma is not None else 1, eps, z,
                 mask, z=z)
    call_tasks(_library(), "rn_forward", args, spec.dtype, _bounds(spec.shape[2], plan.tile), _WHAT)


def run_backward(plan: NativePlan, spec: torch.Tensor, gamma: torch.Tensor | None,
                 beta: torch.Tensor | None, eps: float, gz: torch.Tensor, g_spec: torch.Tensor,
                 g_gamma: torch.Tensor | None, g_beta: torch.Tensor | None,
                 mask: torch.Tensor | None) -> None:
    """The transpose of :func:`run_forward`: ``g_spec[:kin, :kin]`` (written) and, per
    evaluation and map, the gradients at gamma and beta (``(E, N)``, written; sum them over
    the batch)."""
    args = _args(plan, spec, gamma, beta, gamma.shape[1] if gamma is not None else 1, eps, gz,
                 mask, gz=gz, gspec=g_spec, ggamma=g_gamma, gbeta=g_beta)
    call_tasks(_library(), "rn_backward", args, spec.dtype, _bounds(spec.shape[2], plan.tile), _WHAT)
