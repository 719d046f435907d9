"""Per-epoch training state, so that a preempted or timed-out job resumes where it stopped.

After every epoch the loop saves model, optimiser, scheduler, every RNG state
(python, numpy, torch CPU/CUDA and the batch generator), the epoch, the
history and the best-validation weights to ``checkpoints/<run-id>.last.pt``,
atomically. Restoring all of it makes a resumed run on the CPU produce the
same result as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["TrainState", "last_checkpoint_path", "load_state", "save_state"]


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


def last_checkpoint_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / "checkpoints" / f"{run_id}.last.pt"


def save_state(path: Path, state: TrainState, model: nn.Module, opt, sched,
               generator: torch.Generator) -> None:
    payload = {
        "train": state.__dict__, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_state(path: Path, model: nn.Module, opt, sched, generator: torch.Generator
               ) -> TrainState | None:
    """Restore a saved state into the given objects; None when there is none (or it is unreadable)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        sched.load_state_dict(payload["scheduler"])
    except Exception:  # a torn or foreign file: start again rather than resume wrongly
        return None
    generator.set_state(payload["generator"])
    torch.set_rng_state(payload["torch_rng"])
    np.random.set_state(payload["numpy_rng"])
    random.setstate(payload["python_rng"])
    if payload.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    state = TrainState(**payload["train"])
    state.resumed_from = state.epoch
    return state
