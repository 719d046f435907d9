"""The ``cnn`` baseline: its structure and parameter counts, derived from the architecture.

The model protocol (every size, features, gradients, one step) is checked for
every method in tests/test_methods_contract.py.
"""

from __future__ import annotations

import pytest
import torch

from scalebench import methods


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(c_in: int, c_out: int, k: int) -> int:
    """A k x k convolution with bias."""
    return k * k * c_in * c_out + c_out


def bn(c: int) -> int:
    return 2 * c  # a weight and a bias per channel


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def cnn_params(channels: tuple[int, ...], hidden: int, k: int = 7, in_ch: int = 1,
               classes: int = 10) -> int:
    """Per block conv k x k + BN (ReLU and max-pool have none); head
    Linear(C, hidden) -> BN1d -> ReLU -> Dropout -> Linear(hidden, classes)."""
    total, c_prev = 0, in_ch
    for c in channels:
        total += conv(c_prev, c, k) + bn(c)
        c_prev = c
    return total + linear(c_prev, hidden) + bn(hidden) + linear(hidden, classes)


@pytest.mark.parametrize("config,channels,hidden", [
    ("mnist", (32, 63, 95), 256),   # SESN's MNIST CNN, with a global-pool head
    ("quick", (16, 32, 48), 128),
])
def test_parameter_counts(config, channels, hidden):
    model = methods.create("cnn", config=config)
    assert [b[0].out_channels for b in model.blocks] == list(channels)
    assert {b[0].kernel_size for b in model.blocks} == {(7, 7)}
    assert n_params(model) == cnn_params(channels, hidden)


def test_parameter_count_follows_channels_and_classes():
    model = methods.create("cnn", in_channels=3, num_classes=7, config="quick", kernel_size=3)
    assert n_params(model) == cnn_params((16, 32, 48), 128, k=3, in_ch=3, classes=7)


def test_mnist_model_is_smaller_than_the_published_flatten_head():
    # SESN's CNN flattens a 2x2 map of 95 channels into its 256-wide MLP (495k published);
    # the global-pool head takes 95 inputs instead of 380
    ours = n_params(methods.create("cnn"))
    flatten_head = cnn_params((32, 63, 95), 256) - linear(95, 256) + linear(95 * 4, 256)
    assert ours < flatten_head and abs(flatten_head - 495e3) < 0.01 * 495e3
