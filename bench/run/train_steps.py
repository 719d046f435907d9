"""What keeps a GPU busy in the training loop: data where the model is, no host sync per step.

* :func:`on_device` keeps a split on the run's GPU when it is small (every MNIST
  variant; ``SPLIT_ON_DEVICE_BYTES``), so a batch is an index into device memory;
  :func:`to_device` copies a batch of a larger split through pinned memory, without
  blocking. The input policy and the augmentation then act on the device batch; their
  random draws still come from the run's CPU generator, in the same order.
* :class:`EpochTotals` sums an epoch's loss, correct predictions and images on the
  device, and checks that the losses are finite every :func:`finite_check_every`
  steps (each step on the CPU, where a check costs nothing), naming the first
  non-finite one: one host sync per window instead of three per step.

On the CPU every number is what the plain loop gave: the sums are in float64 in the
same order, and every step is checked before its backward pass.
"""

from __future__ import annotations

import dataclasses

import torch

from scaleqbench.bench.errors import NonFiniteLossError
from scaleqbench.datasets.splits import Split

__all__ = ["EpochTotals", "SPLIT_ON_DEVICE_BYTES", "finite_check_every", "on_device",
           "to_device"]

#: a split up to this size stays on the GPU for the run (STL-10's training split is 0.55 GB)
SPLIT_ON_DEVICE_BYTES = 1 << 30
#: steps between two finiteness checks on a GPU (each check waits for the device)
GPU_CHECK_EVERY = 32


def finite_check_every(device: torch.device) -> int:
    return 1 if device.type == "cpu" else GPU_CHECK_EVERY


def _split_bytes(split: Split) -> int:
    return sum(t.numel() * t.element_size() for t in split.images.values())


def on_device(split: Split, device: torch.device) -> Split:
    """``split`` with its batches' tensors on ``device`` when that is not the CPU and the
    split is small (the split itself when not)."""
    if device.type == "cpu" or _split_bytes(split) > SPLIT_ON_DEVICE_BYTES:
        return split
    move = lambda d: {s: t.to(device) for s, t in d.items()}  # noqa: E731
    return dataclasses.replace(split, images=move(split.images), labels=move(split.labels))


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``: as it is when already there; to a GPU through pinned memory,
    without waiting for the copy."""
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


class EpochTotals:
    """One epoch's loss sum, correct predictions and images, kept on the device."""

    def __init__(self, device: torch.device, epoch: int, check_every: int | None = None):
        self.epoch = epoch
        self.every = check_every or finite_check_every(device)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.count = 0
        self._window: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Count one step (before its backward pass); raises :class:`NonFiniteLossError`
        when a window of losses holds a non-finite one."""
        loss = loss.detach()
        self._window.append((step, loss))
        if len(self._window) >= self.every:
            self.check()
        self.loss_sum += loss.double() * y.shape[0]
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.count += y.shape[0]

    def check(self) -> None:
        """Raise for the first non-finite loss of the steps since the last check."""
        if not self._window:
            return
        losses = torch.stack([loss.float() for _, loss in self._window])
        window, self._window = self._window, []
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise NonFiniteLossError(self.epoch, window[first][0], float(losses[first]))

    def values(self) -> tuple[float, float]:
        """The epoch's mean loss and accuracy (checks the last window first)."""
        self.check()
        n = max(self.count, 1)
        return self.loss_sum.item() / n, int(self.correct) / n
