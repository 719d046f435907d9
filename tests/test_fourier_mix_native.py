"""The Fourier network's other CPU kernels -- the spectral mixing's (``_mix_native.cpp``) and
the band moments' (``_moments_native.cpp``) -- against the tensor paths they replace, and the
task drivers that run every kernel (``kernels.h``, :func:`methods.fourier.native.call_tasks`).

What is tested: :class:`~methods.fourier.spectral_mix.SpectralMix` with the kernel computes
what the tensor path computes -- output and the gradients at the spectrum, ``W``, ``P`` and the
bias, float64 to 1e-12 and float32 to float precision, for any band width, channel counts that
fill no whole tile (1, odd, beyond 16) and spectra wider than the band -- and ``gradcheck``
holds; the layer stays exactly scale-equivariant; ``impl`` chooses the path and ``native``
refuses where the kernel cannot run; the FLOP formulas count four real products per side and
frequency; the moments kernel matches the tensor path and ``gradcheck``; the results do not
depend on the thread count, nor on whether the tasks run on the OpenMP team or the pool.
"""

from __future__ import annotations

import pytest
import torch
from fourier_helpers import EXACT, SETTINGS, band_limited, worst_error
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from scaleqbench.methods.fourier import mix_native, moments_native, native
from scaleqbench.methods.fourier.basis import band_mean_square
from scaleqbench.methods.fourier.moments import SpectrumMoments, band_energy, band_energy_backward
from scaleqbench.methods.fourier.spectral import SpectralConv2d
from scaleqbench.methods.fourier.spectral_mix import SpectralMix

needs_kernel = pytest.mark.skipif(
    not mix_native.available(),
    reason=f"the Fourier network's CPU kernels are not built here ({native.status()})")


def operands(k, width, bsz, ci, co, dtype, pointwise=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    spec = torch.randn(k, k, bsz, ci, dtype=dtype, generator=g)
    w = torch.randn(width, (width + 1) // 2, ci, co, dtype=cdtype, generator=g)
    pw = torch.randn(ci, co, dtype=dtype, generator=g) if pointwise else None
    bias = torch.randn(co, dtype=dtype, generator=g)
    return spec, w, pw, bias


def mix(kernel, spec, w, pw, bias, g_out):
    """Output and gradients (spectrum, W, P, bias) of ``sum(SpectralMix(...) * g_out)``."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None
              for t in (spec, w, pw, bias)]
    out = SpectralMix.apply(*leaves, None, 1 << 20, kernel)
    (out * g_out).sum().backward()
    return [out.detach()] + [t.grad for t in leaves if t is not None]


def close(a, b, tol):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item() <= tol


@needs_kernel
@SETTINGS
@given(kmax=st.integers(0, 6), extra=st.integers(0, 3), bsz=st.integers(1, 5),
       ci=st.sampled_from([1, 2, 3, 17]), co=st.sampled_from([1, 5, 16, 19]),
       pointwise=st.booleans())
def test_the_kernel_mixes_as_the_tensor_path_in_float64(kmax, extra, bsz, ci, co, pointwise):
    """Every output and gradient to 1e-12: the band (width 2 kmax + 1) of a spectrum that may
    be wider (the rest is the pointwise term's, outside the kernel), batch 1 (one row of the
    kernel's pair of batch rows), channel counts that fill no whole tile."""
    width = 2 * kmax + 1
    spec, w, pw, bias = operands(width + 2 * extra, width, bsz, ci, co, torch.float64, pointwise)
    g_out = torch.randn(spec.shape[:3] + (co,), dtype=torch.float64)
    for got, want in zip(mix(True, spec, w, pw, bias, g_out), mix(False, spec, w, pw, bias, g_out)):
        assert close(got, want, 1e-12)


@needs_kernel
def test_the_kernel_mixes_as_the_tensor_path_in_float32():
    spec, w, pw, bias = operands(27, 27, 6, 20, 33, torch.float32)
    g_out = torch.randn(27, 27, 6, 33)
    for got, want in zip(mix(True, spec, w, pw, bias, g_out), mix(False, spec, w, pw, bias, g_out)):
        assert close(got, want, 2e-6)


@needs_kernel
def test_the_kernels_backward_is_the_derivative_of_its_forward():
    spec, w, pw, bias = operands(7, 5, 2, 2, 3, torch.float64)
    leaves = [t.requires_grad_() for t in (spec, w, pw, bias)]
    assert torch.autograd.gradcheck(lambda *t: SpectralMix.apply(*t, None, 1 << 20, True), leaves)


@needs_kernel
@pytest.mark.parametrize("impl", ["native", "tensor"])
def test_the_spectral_convolution_stays_exactly_scale_equivariant(impl):
    conv = SpectralConv2d(3, 4, 20, 5, impl=impl).double()
    x = band_limited((2, 3), 20, 5)
    assert worst_error(conv, x, range(8, 20)) < EXACT


@needs_kernel
def test_impl_chooses_the_path_and_native_refuses_where_the_kernel_cannot_run():
    spec = torch.zeros(5, 5, 1, 3)
    assert SpectralConv2d(3, 4, 8, 3).implementation(spec) == "CPU kernel"
    assert SpectralConv2d(3, 4, 8, 3, impl="tensor").implementation(spec) == "tensor operations"
    assert SpectralConv2d(3, 4, 8, 3, impl="reference").implementation(spec) == "tensor operations"
    half = spec.to(torch.bfloat16)
    assert SpectralConv2d(3, 4, 8, 3).implementation(half) == "tensor operations"
    with pytest.raises(ValueError, match="impl='native' needs .*cpu torch.bfloat16.*impl='fast'"):
        SpectralConv2d(3, 4, 8, 3, impl="native").implementation(half)
    with pytest.raises(ValueError, match="impl must be one of fast, tensor, native, reference"):
        SpectralConv2d(3, 4, 8, 3, impl="gpu")


@needs_kernel
def test_the_flop_count_is_four_real_products_per_side_and_frequency():
    """Forward: row 0 (side A) and ``kmax`` row pairs (two sides) over ``kmax + 1`` columns,
    four real products each, 2 FLOP per multiply-add; backward: the input and weight
    gradients, as many each."""
    bsz, ci, co, kmax = 3, 4, 5, 2
    spec, w, pw, bias = operands(2 * kmax + 1, 2 * kmax + 1, bsz, ci, co, torch.float32)
    per_call = 2 * bsz * ci * co * (kmax + 1) * (8 * kmax + 4)
    spec.requires_grad_()
    w.requires_grad_()
    with FlopCounterMode(display=False) as counter:
        out = SpectralMix.apply(spec, w, None, None, None, 1 << 20, True)
    assert counter.get_total_flops() == per_call
    with FlopCounterMode(display=False) as counter:
        out.sum().backward()
    assert counter.get_total_flops() == 2 * per_call


# --- the band moments ---------------------------------------------------------------------
@needs_kernel
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-13), (torch.float32, 2e-6)])
@pytest.mark.parametrize("shape", [(27, 27, 300), (13, 9, 77), (5, 5, 3)])
def test_the_moments_kernel_matches_the_tensor_path(dtype, tol, shape):
    big_k, k, n = shape
    g = torch.Generator().manual_seed(n)
    spec = torch.randn(big_k, big_k, n, dtype=dtype, generator=g)
    w = band_mean_square(list(range((k + 1) // 2)), k, dtype)
    mean, ms = moments_native.forward(spec, moments_native.BandProducts.of(w))
    assert torch.equal(mean, spec[0, 0]) and close(ms, band_energy(spec, w), tol)
    g_mean, g_ms = torch.randn(n, dtype=dtype, generator=g), torch.randn(ms.shape, dtype=dtype,
                                                                          generator=g)
    got, want = torch.zeros_like(spec), torch.zeros_like(spec)
    moments_native.backward(spec, moments_native.BandProducts.of(w), g_mean, g_ms, got)
    band_energy_backward(spec, w, g_ms, want)
    want[0, 0] += g_mean
    assert close(got, want, tol)


@needs_kernel
def test_the_moments_kernels_backward_is_the_derivative_of_its_forward():
    spec = torch.randn(7, 7, 5, dtype=torch.float64, requires_grad=True)
    w = band_mean_square([0, 1, 2], 5, torch.float64)
    assert moments_native.usable(spec)
    assert torch.autograd.gradcheck(lambda s: SpectrumMoments.apply(s, w, None), (spec,))


@needs_kernel
def test_the_moments_flop_count_is_the_nonzero_products():
    """2 FLOP per multiply-add the kernel does: per map, the nonzero ``w[s, a] w[s, c]``
    (band s holds (2 b_s + 1)^2 coefficients)."""
    bands, n = [0, 1, 2], 4
    spec = torch.randn(5, 5, n, requires_grad=True)
    w = band_mean_square(bands, 5, torch.float32)
    nonzero = sum((2 * b + 1) ** 2 for b in bands)
    with FlopCounterMode(display=False) as counter:
        mean, ms = SpectrumMoments.apply(spec, w, None)
    assert counter.get_total_flops() == 2 * nonzero * n
    with FlopCounterMode(display=False) as counter:
        ms.sum().backward()
    assert counter.get_total_flops() == 2 * nonzero * n


# --- the task drivers ---------------------------------------------------------------------
def kernels_step(dtype):
    """What the kernels compute for one mixing (forward, gradients at the spectrum, W and P)
    and the moments of its output (both directions)."""
    spec, w, pw, bias = operands(9, 9, 13, 5, 19, dtype, seed=3)
    g_out = torch.randn(9, 9, 13, 19, dtype=dtype, generator=torch.Generator().manual_seed(4))
    out, g_spec, g_w, g_pw, _ = mix(True, spec, w, pw, bias, g_out)  # the bias: torch's sum
    flat = out.reshape(9, 9, -1)
    bands = moments_native.BandProducts.of(band_mean_square([1, 2, 4], 9, dtype))
    mean, ms = moments_native.forward(flat, bands)
    g_flat = torch.empty_like(flat)
    moments_native.backward(flat, bands, mean, ms, g_flat)
    return [out, g_spec, g_w, g_pw, mean, ms, g_flat]


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_results_do_not_depend_on_threads_nor_on_who_runs_the_tasks(dtype, monkeypatch):
    """One thread, two threads, and the tasks on the thread pool instead of the OpenMP team
    (a build without OpenMP): every value bit-identical (tasks write disjoint outputs; the
    partial sums are added in a fixed order)."""
    before, runs = torch.get_num_threads(), []
    try:
        for threads, openmp in ((1, True), (2, True), (2, False)):
            torch.set_num_threads(threads)
            monkeypatch.setattr(native, "uses_openmp", lambda lib, on=openmp: on)
            runs.append(kernels_step(dtype))
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


def test_rows_get_more_tasks_only_where_the_threads_outnumber_them():
    assert mix_native.tile_groups(rows=14, tiles=7, threads=2) == 1  # the paper layer, 2 cores
    assert mix_native.tile_groups(rows=14, tiles=7, threads=7) == 1
    assert mix_native.tile_groups(rows=14, tiles=7, threads=32) == 5  # 70 tasks for 32 threads
    assert mix_native.tile_groups(rows=2, tiles=2, threads=64) == 2  # never more than its tiles


@needs_kernel
@pytest.mark.parametrize("groups", [2, 3, 7])
def test_rows_cut_into_tile_groups_compute_the_same_bits(groups, monkeypatch):
    """Several tasks per row (as on a machine with more threads than rows): each writes its
    own output channels, so every value is bit-identical to one task per row."""
    for dtype in (torch.float64, torch.float32):
        monkeypatch.setattr(mix_native, "tile_groups", lambda rows, tiles, threads: 1)
        one = kernels_step(dtype)
        monkeypatch.setattr(mix_native, "tile_groups",
                            lambda rows, tiles, threads: min(groups, tiles))
        assert all(torch.equal(a, b) for a, b in zip(one, kernels_step(dtype)))


@needs_kernel
def test_a_failed_task_raises_one_memory_error_naming_the_kernel(monkeypatch):
    """A task that cannot allocate its buffers fails the call, on either runner."""
    real = mix_native._library()

    class Failing:  # the mixing's entries fail (as a task whose malloc failed), the rest is real
        def __getattr__(self, name):
            failing = name.startswith(("mx_rows", "mx_weight_grad"))
            return (lambda *a: 1) if failing else getattr(real, name)

    spec, w, pw, _ = operands(5, 5, 2, 2, 3, torch.float32)
    for openmp in (True, False):
        monkeypatch.setattr(mix_native, "_library", lambda: Failing())
        monkeypatch.setattr(native, "uses_openmp", lambda lib, on=openmp: on)
        with pytest.raises(MemoryError, match="spectral mixing's CPU kernel could not allocate"):
            mix_native.inner_forward(spec, w, pw, torch.empty(5, 5, 2, 3))
