"""Helpers for the tests against the authors' code: fixture loading, the fixtures' weight
rule, and the float32 comparison.

The fixtures under tests/fixtures/<method>/ were made by running the authors' public
code once (each folder's SOURCE.md says what, how and from which commit). Small layers
store their weights; whole networks are given weights by :func:`fill`, the same rule the
fixture driver applied to the authors' network, so that both networks get the same
numbers wherever they register the same parameters in the same order.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

FIXTURES = Path(__file__).parent / "fixtures"


def load_arrays(method: str) -> dict[str, torch.Tensor]:
    """Every array of ``fixtures/<method>/reference.npz`` as a float32 tensor."""
    with np.load(FIXTURES / method / "reference.npz") as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def load_counts(method: str) -> dict[str, int]:
    """The authors' parameter count of each published model, by their model name."""
    return json.loads((FIXTURES / method / "param_counts.json").read_text())


@torch.no_grad()
def fill(module: nn.Module, seed: int) -> None:
    """The fixtures' weights: every parameter in registration order from one generator
    (tensors of dim >= 2: He-normal over their fan-in; 1-D ``*weight``: 1 + 0.1 N(0, 1);
    other 1-D: 0.1 N(0, 1)), then every BatchNorm's running mean (0.1 N(0, 1)) and
    variance (0.5 + U(0, 1)), in module order."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            fan_in = p.numel() // p.shape[0]
            p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in))
        elif name.endswith("weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    for name, b in module.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(0.1 * torch.randn(b.shape, generator=g))
        elif name.endswith("running_var"):
            b.copy_(0.5 + torch.rand(b.shape, generator=g))


def parameter_shapes(module: nn.Module) -> list[tuple[int, ...]]:
    """Shapes of the parameters in registration order (what :func:`fill` walks through)."""
    return [tuple(p.shape) for p in module.parameters()]


def assert_float32_close(ours: torch.Tensor, theirs: torch.Tensor, rel: float = 1e-5) -> None:
    """Equal to float32 precision: ``|ours - theirs| <= rel * max|theirs|`` everywhere."""
    assert ours.shape == theirs.shape, (tuple(ours.shape), tuple(theirs.shape))
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours.to(theirs.dtype), theirs, rtol=0, atol=rel * scale)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
