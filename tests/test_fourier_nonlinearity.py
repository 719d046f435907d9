"""The ring nonlinearity and pooling: exact scale equivariance, and the fast path equals the
per-ring reference (values and gradients)."""

from __future__ import annotations

import pytest
import torch
from fourier_helpers import EXACT, SETTINGS, band_limited, layer_pair, worst_error
from hypothesis import given
from hypothesis import strategies as st

from scaleqbench.bench.run.metrics import relative_sq_error
from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.methods.fourier.basis import ring_schedule
from scaleqbench.methods.fourier.nonlinearity import RingNonlinearity
from scaleqbench.methods.fourier.reference import ring_mask


# --- ring nonlinearity and pooling ----------------------------------------------------------
def make_pair(channels, base, top, pool, act, norm, seed, dtype=torch.float64, waste=1.0):
    """The fast layer and the per-ring reference, same parameters."""
    return layer_pair(channels, base, top, pool, act, norm, seed, dtype, waste=waste)


layer_cases = st.tuples(st.integers(6, 12), st.integers(0, 10), st.sampled_from([1, 1, 2, 3]),
                        st.sampled_from(["relu", "gelu", "tanh"]), st.booleans())


@SETTINGS
@given(case=layer_cases, seed=st.integers(0, 2**16), waste=st.sampled_from([1.0, 1.6]))
def test_fast_nonlinearity_equals_the_per_ring_reference(case, seed, waste):
    base, extra, pool, act, norm = case
    top = base + extra + pool
    fast, ref = make_pair(3, base, top, pool, act, norm, seed, waste=waste)
    for n in {base, top, (base + top) // 2}:
        x = band_limited((2, 3), n, seed + n)
        assert relative_sq_error(ref(x), fast(x)).max().item() <= 1e-20  # i.e. 1e-10 relative


@SETTINGS
@given(case=layer_cases, seed=st.integers(0, 2**16))
def test_nonlinearity_and_pooling_commute_with_scaling_at_every_size(case, seed):
    base, extra, pool, act, norm = case
    top = base + extra + pool
    fast, _ = make_pair(3, base, top, pool, act, norm, seed)
    x = band_limited((2, 3), top, seed)
    assert worst_error(fast, x, range(base, top), lambda s: s // pool) <= EXACT


@pytest.mark.parametrize("pool", [1, 2])
def test_nonlinearity_float32_is_exact_to_float_precision(pool):
    fast, _ = make_pair(4, 8, 28, pool, "relu", True, 0, dtype=torch.float32)
    x = band_limited((2, 4), 28, 0, dtype=torch.float32)
    assert worst_error(fast, x, range(8, 28), lambda s: s // pool) <= 1e-10


def test_reference_is_equivariant_too_and_official_style_pooling_is_not():
    """The definition itself is exact; pooling the full-size map instead (as a plain
    max-pool of ``act(x)`` would) is not -- the comparison shows the test has teeth."""
    fast, ref = make_pair(2, 8, 21, 2, "relu", False, 3)
    x = band_limited((2, 2), 21, 3)
    assert worst_error(ref, x, range(8, 21), lambda s: s // 2) <= EXACT

    def naive(t):
        y = torch.nn.functional.max_pool2d(torch.relu(t), 2)
        return fourier_resize(y, y.shape[-1])

    assert worst_error(naive, x, range(8, 21), lambda s: s // 2) > 1e-6


def test_output_ring_depends_only_on_input_rings_up_to_its_own():
    fast, _ = make_pair(2, 8, 25, 1, "relu", True, 4)
    x = band_limited((1, 2), 25, 4)
    y = fast(x)
    # perturb input ring 9 only: output rings <= 8 must not move
    bump = torch.fft.ifft2(ring_mask(25, 9, 9).to(torch.complex128)
                           * torch.fft.fft2(band_limited((1, 2), 25, 5)), norm="backward").real
    dy = torch.fft.fft2(fast(x + bump) - y, norm="forward")
    assert dy[..., ring_mask(25, 0, 8)].abs().max() < 1e-12
    assert dy[..., ring_mask(25, 9, 12)].abs().max() > 1e-6


def test_schedule_has_one_evaluation_per_ring_above_the_base():
    sched = ring_schedule(28, 8, 1)
    assert sched[0] == (8, 3, 3)
    assert [r for _, _, r in sched[1:]] == list(range(4, 14))
    assert all(g == 2 * r + 1 and band == r for g, band, r in sched[1:])
    pooled = ring_schedule(97, 49, 2)
    assert pooled[0] == (48, 23, 11)
    assert all(g == 2 * (2 * r + 1) for g, _, r in pooled[1:])


@SETTINGS
@given(case=layer_cases, seed=st.integers(0, 2**16), chunk=st.sampled_from([1, 300, 1 << 20]),
       waste=st.sampled_from([1.0, 1.6]))
def test_gradients_of_fast_and_reference_agree(case, seed, chunk, waste):
    """The fast path's hand-written backward (chunked, recomputing from the raw grids) against
    autograd through the per-ring reference: input, gamma and beta gradients, float64."""
    base, extra, pool, act, norm = case
    top = base + extra + pool
    fast, ref = make_pair(2, base, top, pool, act, norm, seed, waste=waste)  # 1.6: shared stacks
    fast.chunk_elements = chunk  # 1: one map per chunk; 300: a few; 2**20: all in one chunk
    x = band_limited((2, 2), top, seed).requires_grad_()
    w = torch.randn(2, 2, top // pool, top // pool, dtype=torch.float64)
    grads = []
    for layer in (fast, ref):
        layer.zero_grad()
        x.grad = None
        (layer(x) * w).sum().backward()
        grads.append([x.grad.clone()] + ([layer.gamma.grad.clone(), layer.beta.grad.clone()]
                                         if norm else []))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-9)


def test_sizes_outside_the_range_are_refused():
    layer = RingNonlinearity(2, 8, 16)
    with pytest.raises(ValueError, match="8..16"):
        layer(torch.zeros(1, 2, 7, 7))
    with pytest.raises(ValueError, match="8..16"):
        layer(torch.zeros(1, 2, 17, 17))
