"""``bench perf``'s work count: PyTorch's FLOP counter plus the FFTs, checked against hand counts."""

from __future__ import annotations

import math

import pytest
import torch

from scaleqbench.bench.run.flops import count_flops, fft_flops


def test_a_tiny_convolution_counts_two_operations_per_multiply_add():
    """3x3 conv, 2 -> 3 channels, 5x5 input, no padding: 3x3 outputs per channel, each 2*9 taps."""
    conv = torch.nn.Conv2d(2, 3, 3, bias=False)
    x = torch.randn(1, 2, 5, 5)
    total, fft = count_flops(lambda: conv(x))
    assert total == 2 * (3 * 3 * 3) * (2 * 3 * 3) == 972 and fft == 0
    # backward: the input gradient and the weight gradient are each one more such product
    x.requires_grad_()
    total, _ = count_flops(lambda: conv(x).sum().backward())
    assert total == 3 * 972


def test_ffts_count_five_n_log2_n_per_complex_transform_of_length_n():
    z = torch.randn(3, 8, dtype=torch.complex64)
    assert count_flops(lambda: torch.fft.fft(z)) == (3 * 5 * 8 * 3, 360)
    r = torch.randn(3, 8)
    assert count_flops(lambda: torch.fft.rfft(r)) == (180, 180)  # real input: half
    assert count_flops(lambda: torch.fft.irfft(torch.fft.rfft(r), n=8)) == (360, 360)
    # 2-D: 8 transforms of length 8 along the last axis, then 16 of length 4 along the other
    z2 = torch.randn(2, 4, 8, dtype=torch.complex64)
    assert count_flops(lambda: torch.fft.fft2(z2))[1] == 2 * 4 * 120 + 2 * 8 * (5 * 4 * 2)


def test_rfft2_counts_its_other_axis_on_the_half_spectrum_and_backward_counts_too():
    assert fft_flops((2, 4, 8), (1, 2), "r2c") == 2 * 4 * 60 + 2 * 5 * (5 * 4 * 2)
    assert fft_flops((2, 4, 5), (1, 2), "c2r", 8) == 2 * 5 * 40 + 2 * 4 * 60
    x = torch.randn(2, 4, 8, requires_grad=True)
    fwd, _ = count_flops(lambda: torch.fft.rfft2(x))
    both, fft = count_flops(lambda: torch.fft.rfft2(x).abs().sum().backward())
    assert both == fft > fwd == 2 * 4 * 60 + 2 * 5 * 40


def test_length_one_transforms_are_free_and_odd_lengths_use_the_same_formula():
    assert fft_flops((3, 1), (1,), "c2c") == 0
    assert fft_flops((1, 5), (1,), "c2c") == pytest.approx(5 * 5 * math.log2(5))


def test_fourier_work_is_counted_in_its_worker_threads_too():
    """The Fourier layers hand their chunks to worker threads; under the counter they run on
    the calling thread, so the count does not depend on the thread count."""
    from scaleqbench import methods

    torch.manual_seed(0)
    model = methods.create("fourier", config="quick")
    x = torch.randn(4, 1, 12, 12)
    counts = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            counts.append(count_flops(lambda: model(x).sum().backward())[0])
    finally:
        torch.set_num_threads(threads)
    assert counts[0] == counts[1] > 0
