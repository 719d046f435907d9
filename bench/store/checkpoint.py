"""The two checkpoint formats of a run, and the only code that writes or reads them.

* Best-validation weights, ``checkpoints/<run-id>.pt``: ``{"spec", "config",
  "state_dict"}`` (the RunSpec as :meth:`~bench.spec.RunSpec.to_json` writes it, the
  method configuration, the model's weights). Kept after the run; ``bench equivariance
  --checkpoint`` reads it.
* Per-epoch training state, ``checkpoints/<run-id>.last.pt``: model, optimiser,
  scheduler, every RNG state (python, numpy, torch CPU, the batch generator, and
  the CUDA generator of the GPU the run trains on), the epoch, the history and the
  best-validation weights. Written after every epoch so that a preempted or
  timed-out job resumes where it stopped; restoring all of it makes a resumed run on
  the CPU produce the same result as an uninterrupted one. Deleted when the run
  completes. A state is read onto whatever device the run now has: the CUDA
  generator is restored only onto a GPU, from the state of the one GPU the run used
  (files of earlier versions hold one state per GPU that was visible; the run's own is
  taken, never one per GPU visible now).

Both are written atomically (:mod:`.atomic_io`).
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scaleqbench.bench.errors import CheckpointError
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.atomic_io import atomic_torch_save

__all__ = ["BestCheckpoint", "TrainState", "best_checkpoint_path", "cuda_state_for",
           "last_checkpoint_path", "load_best", "load_state", "save_best", "save_state"]

log = logging.getLogger(__name__)

_BEST_HINT = "pass a checkpoints/<run-id>.pt written by bench run"


@dataclass
class TrainState:
    """Everything the training loop carries from one epoch to the next."""

    epoch: int = 0  # epochs completed
    best_acc: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    seen: int = 0
    train_s: float = 0.0
    resumed_from: int | None = None


@dataclass(frozen=True)
class BestCheckpoint:
    """The best-validation weights of a run, with what is needed to rebuild its model."""

    spec: RunSpec
    config: str
    state_dict: dict[str, torch.Tensor]


def best_checkpoint_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "checkpoints" / f"{run_id}.pt"


def last_checkpoint_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "checkpoints" / f"{run_id}.last.pt"


def _first_line(exc: BaseException) -> str:
    """``Type: first sentence of the message``: torch's load errors run over many lines."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].split('. ')[0][:200]}" if lines else \
        type(exc).__name__


def save_best(path: Path, spec: RunSpec, config: str,
              state_dict: dict[str, torch.Tensor]) -> Path:
    return atomic_torch_save({"spec": spec.to_json(), "config": config,
                              "state_dict": state_dict}, path)


def load_best(path: str | Path) -> BestCheckpoint:
    """The best-weights checkpoint at ``path``; :class:`CheckpointError` (one line) when the
    file is missing or is not one (a text or JSON file, a torn write, a per-epoch state)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file {path}; {_BEST_HINT}")
    if path.name.endswith(".last.pt"):
        raise CheckpointError(f"{path} is the per-epoch training state of an unfinished run, "
                              f"not its best weights; {_BEST_HINT}")
    try:
        # weights_only: the format holds only dicts, strings, numbers and tensors, and a file
        # given on the command line must not run code when unpickled
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"{path} is not a scaleqbench checkpoint ({_first_line(exc)}); "
                              f"{_BEST_HINT}") from exc
    ok = isinstance(payload, dict) and isinstance(payload.get("config"), str) \
        and isinstance(payload.get("state_dict"), dict)
    try:  # a checkpoint of any version: from_json reads the flat specs of earlier ones too
        spec = RunSpec.from_json(payload["spec"]) if ok else None
    except (KeyError, ValueError):
        ok = False
    if not ok:
        raise CheckpointError(f"{path} is not a scaleqbench checkpoint (no spec, config and "
                              f"state_dict); {_BEST_HINT}")
    return BestCheckpoint(spec, payload["config"], payload["state_dict"])


def _device_of(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def cuda_state_for(saved: Any, device: torch.device) -> torch.Tensor | None:
    """The CUDA generator state to restore on ``device`` from what a file holds: None off
    a GPU; the one state a file holds; from a list (one state per GPU visible when an
    earlier version saved it) the state of the GPU with the run's index, else the first."""
    if device.type != "cuda" or saved is None:
        return None
    if isinstance(saved, (list, tuple)):
        if not saved:
            return None
        index = device.index or 0
        return saved[index] if index < len(saved) else saved[0]
    return saved


def _capture(model: nn.Module, opt, sched, generator: torch.Generator) -> dict[str, Any]:
    """Model, optimiser, scheduler and every RNG state (the per-epoch payload less ``train``);
    of CUDA, only the generator of the model's GPU (asking for every GPU's would start a
    context on each)."""
    device = _device_of(model)
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def _apply(payload: dict[str, Any], model: nn.Module, opt, sched,
           generator: torch.Generator) -> None:
    model.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optimizer"])
    sched.load_state_dict(payload["scheduler"])
    generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    np.random.set_state(payload["numpy_rng"])
    random.setstate(payload["python_rng"])
    device = _device_of(model)
    cuda = cuda_state_for(payload.get("cuda_rng"), device)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def save_state(path: Path, state: TrainState, model: nn.Module, opt, sched,
               generator: torch.Generator) -> None:
    atomic_torch_save({"train": state.__dict__, **_capture(model, opt, sched, generator)}, path)


def load_state(path: Path, model: nn.Module, opt, sched, generator: torch.Generator
               ) -> TrainState | None:
    """Restore the per-epoch state at ``path`` into the given objects and return it.

    None when there is no file. When the file cannot be restored (torn, garbage, or
    written for another model), logs one warning naming it and returns None with the
    model, optimiser, scheduler and RNGs as they were: training starts from epoch 0, as
    if there had been no file, and the next epoch's save replaces it.
    """
    if not path.is_file():
        return None
    try:
        # weights_only=False: the payload holds numpy and python RNG states; the file is
        # this run's own, written by save_state
        payload = torch.load(path, map_location="cpu", weights_only=False)
        state = TrainState(**payload["train"])
    except Exception as exc:  # noqa: BLE001 - unreadable: start again rather than resume wrongly
        _warn_restart(path, exc)
        return None
    before = copy.deepcopy(_capture(model, opt, sched, generator))
    try:
        _apply(payload, model, opt, sched, generator)
    except Exception as exc:  # noqa: BLE001 - a partial restore must not leak into the fresh start
        _apply(before, model, opt, sched, generator)
        _warn_restart(path, exc)
        return None
    state.resumed_from = state.epoch
    return state


def _warn_restart(path: Path, exc: BaseException) -> None:
    log.warning("cannot resume from %s (%s); training restarts from epoch 0", path,
                _first_line(exc))
