"""How much memory one ``bench perf`` training step will need, known before it runs.

A model's activations grow with the pixels of its input and with the batch: at
1000 x 1000 a 7 x 7 convolution's unfolded input alone (the im2col matrix a CPU
convolution multiplies with) is C * 49 * 10^6 floats per image, and a step that
asks for more than the machine has is killed by the kernel, not refused. So
each (method, size) is probed first on two small images in training mode: the
tensors autograd saves for the backward pass (``saved_tensors_hooks``; each storage
once) are what a training step keeps, and a ``TorchFunctionMode`` finds the
largest unfolded convolution input (the transient workspace). The step's estimate is::

    batch / 2 * (size_seen / probe)^2 * (saved + workspace) + 4 * parameter bytes

(weights, gradients and two Adam moments). Counting every tensor the forward makes
instead (the first version) read 18 GB for the paper-size ``fourier`` step at 28 px,
batch 128, whose measured peak is 1.2 GB (its forward makes many short-lived spectra),
and refused it; saved tensors are what stays alive until the backward pass (the
``fourier`` ring nonlinearity's grids included: it saves them with
``save_for_backward``, where the hook sees them). Against the peaks `bench perf`
measured on the CPU at 28 px, batch 128 (paper configs), this reads 0.9x (dss), 1.8x
(cnn), 3.4x (fourier) and 4.6x (sesn): an estimate, which the check compares with 80 %
of the free memory.
A step whose estimate exceeds the memory free on its device (CPU: ``MemAvailable``
and the cgroup's limit; CUDA: what the driver reports free) is refused with one
line, before anything is measured or written. The input batch is made on the host
(float64 noise and its resize), so on a GPU its bytes are held against the host's
free memory, the step's against the GPU's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from scaleqbench.bench.errors import MemoryLimitError

__all__ = ["available_bytes", "check_perf_memory", "estimate_run_bytes", "estimate_step_bytes",
           "refused_allocation"]

PROBE_SIZE = 32  # small enough to cost nothing, large enough for every model's stem
_CONVS = {torch.conv2d, torch.nn.functional.conv2d, torch.conv_transpose2d,
          torch.nn.functional.conv_transpose2d}


class _ConvWorkspace(TorchFunctionMode):
    """The largest im2col (unfolded input) of a convolution made under it."""

    def __init__(self) -> None:
        super().__init__()
        self.workspace = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _CONVS and len(args) >= 2 and isinstance(out, torch.Tensor):
            x, w = args[0], args[1]
            per_out_pixel = w.shape[1] * math.prod(w.shape[2:])  # C_in/groups * kh * kw
            self.workspace = max(self.workspace, x.shape[0] * per_out_pixel
                                 * math.prod(out.shape[2:]) * out.element_size())
        return out


class _SavedBytes:
    """Pack hook: the storages autograd saves for backward (each once; parameters left out,
    they are counted apart)."""

    def __init__(self, params: set[int]) -> None:
        self.kept: dict[int, torch.Tensor] = {}
        self.params = params

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            ptr = t.untyped_storage().data_ptr()
            if ptr not in self.params:
                self.kept.setdefault(ptr, t)
        return t

    @property
    def saved(self) -> int:
        return sum(t.untyped_storage().nbytes() for t in self.kept.values())


def estimate_step_bytes(model: torch.nn.Module, in_channels: int, size_seen: int,
                        batch: int) -> int | None:
    """Estimated peak bytes of one training step of ``model`` on ``batch`` images of
    ``size_seen`` pixels a side (see the module docstring); None when the probe cannot run
    (the measurement will say why)."""
    probe = min(size_seen, PROBE_SIZE)
    device = next(model.parameters(), torch.empty(0)).device
    # two images: batch statistics need more than one value per channel
    x = torch.randn(2, in_channels, probe, probe, device=device,
                    generator=torch.Generator(device=device).manual_seed(0))
    was_training = model.training
    state = {k: v.clone() for k, v in model.state_dict().items()}  # BN running stats move
    saved = _SavedBytes({p.untyped_storage().data_ptr() for p in model.parameters()})
    conv = _ConvWorkspace()
    try:
        model.train()
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(saved.pack,
                                                                           lambda t: t), conv:
            model(x)
    except Exception:  # noqa: BLE001 - the real measurement reports a model that fails
        return None
    finally:
        model.load_state_dict(state)
        model.train(was_training)
    scale = batch / 2 * (size_seen / probe) ** 2
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return int(scale * (saved.saved + conv.workspace)) + 4 * params  # both seen on 2 images


def estimate_run_bytes(spec: Any) -> int | None:
    """:func:`estimate_step_bytes` of a run's training step (a :class:`~bench.spec.RunSpec`):
    its model and its recipe's batch, at the largest size its dataset holds (the canvas);
    None when it cannot be told. A Slurm task of several runs plans with it."""
    from scaleqbench import methods
    from scaleqbench.bench.run import recipes
    from scaleqbench.bench.spec import preset
    from scaleqbench.datasets import dataset_info
    from scaleqbench.datasets.splits import method_config_of

    try:
        info = dataset_info(spec.dataset)
        family = method_config_of(info.protocol)
        channels = 3 if family == "stl10" else 1
        config = preset(spec.preset).config or family
        batch = recipes.recipe_for(spec.method, config).batch_size
        with torch.random.fork_rng(devices=[]):
            model = methods.create(spec.method, in_channels=channels, config=config,
                                   **dict(spec.method_kwargs))
    except Exception:  # noqa: BLE001 - the run itself reports what is wrong with it
        return None
    return estimate_step_bytes(model, channels, max(info.sizes), batch)


def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup (v2) memory limit, None without one."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a step on ``device``; None when it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    cgroup = _cgroup_free()
    known = [b for b in (free, cgroup) if b is not None]
    return min(known) if known else None


def _input_bytes(size: int, batch: int) -> int:
    """Peak bytes of making ``bench perf``'s input: noise of twice the size in float64, its
    ``fourier_resize`` matrix, and the cosine table that matrix is summed from (in slices
    of at most 2**25 elements: ``datasets.scaling``), three such slices at a time."""
    noise = batch * (2 * size) ** 2 * 8
    return 2 * noise + size * 2 * size * 8 + 3 * 8 * min(2**25, size * 2 * size * size)


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def check_perf_memory(chosen: Sequence[tuple[str, dict[str, Any]]], sizes: Iterable[int],
                      batch: int, config: str, in_channels: int, device: str,
                      input: str = "native", canvas: int | None = None,
                      headroom: float = 0.8) -> None:
    """Refuse (:class:`MemoryLimitError`) a ``bench perf`` whose largest step would need more
    than ``headroom`` of the memory free on ``device``; a method's largest size is probed."""
    from scaleqbench import methods

    dev = torch.device(device)
    free, host_free = available_bytes(dev), available_bytes(torch.device("cpu"))
    sizes = [int(s) for s in sizes]
    host_need = _input_bytes(max(sizes), batch)
    if dev.type != "cpu" and host_free is not None and host_need > headroom * host_free:
        raise MemoryLimitError(
            f"the input batch at size {max(sizes)}, batch {batch} needs about "
            f"{_gb(host_need)} on the host, more than {headroom:.0%} of the {_gb(host_free)} "
            "free there; use smaller --sizes or --batch")
    if free is None:
        return
    for name, kwargs in chosen:
        entry = methods.get_method(name)
        policy = entry.input if input == "published" else input
        seen = (canvas or max(sizes)) if policy in ("pad", "upsample") else max(sizes)
        with torch.random.fork_rng(devices=[]):
            model = methods.create(name, in_channels=in_channels, config=config, **kwargs)
        need = estimate_step_bytes(model.to(dev), in_channels, seen, batch)
        if need is not None and dev.type == "cpu":  # one memory for the step and its input
            need = max(need, host_need)
        if need is not None and need > headroom * free:
            label = methods_label(name, kwargs)
            raise MemoryLimitError(
                f"{label} at size {seen}, batch {batch} needs about {_gb(need)} for one "
                f"training step, more than {headroom:.0%} of the {_gb(free)} free on {dev.type}; "
                "use smaller --sizes or --batch")


def methods_label(name: str, kwargs: dict[str, Any]) -> str:
    from scaleqbench.bench.spec_parsing import format_method

    return format_method(name, kwargs)


@contextlib.contextmanager
def refused_allocation() -> Iterator[None]:
    """An allocation the device refuses (CUDA out of memory; on the CPU, a request larger
    than the kernel will ever grant) ends the measurement with one line, not a traceback."""
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        text = str(exc)
        if not isinstance(exc, torch.OutOfMemoryError) and "can't allocate memory" not in text:
            raise
        first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
        raise MemoryLimitError(f"the device refused an allocation ({first}); use smaller "
                               "--sizes or --batch") from None
