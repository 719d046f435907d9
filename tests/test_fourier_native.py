"""The ring nonlinearity's CPU kernel (methods/fourier/_ring_native.cpp, bound by
methods/fourier/native.py) against the tensor path it replaces.

What is tested: the install built the kernel where a C++ compiler exists; ``impl="native"``
computes the same function as ``impl="tensor"`` -- output and gradients at the input spectrum,
gamma and beta, float64 to 1e-12 and float32 to float precision, with partial tiles of maps --
and its backward is the derivative of its forward (``gradcheck``); the layer stays exactly
scale-equivariant; what forward keeps for backward (pool 1: one uint8 ReLU mask of the
documented size and layout, no grid; nothing at all under ``no_grad``); which cases refuse
to run natively and which fall back to the tensor path; ``native.status()``; and that the
result does not depend on the number of worker threads.

Where the kernel is not built, the tests that need it skip, saying so; the first test then
fails if a C++ compiler is present (the build should have worked).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from fourier_helpers import EXACT, SETTINGS, band_limited, layer_pair, worst_error
from hypothesis import given
from hypothesis import strategies as st

from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.methods.fourier import grid_rings_native, native
from scaleqbench.methods.fourier.basis import map_spectrum, ring_schedule
from scaleqbench.methods.fourier.nonlinearity import IMPLS, RingNonlinearity

needs_kernel = pytest.mark.skipif(
    not native.available(),
    reason=f"the ring nonlinearity's CPU kernel is not built here ({native.status()})")


def test_the_install_built_the_kernel_where_a_compiler_exists():
    """The kernel is optional (setup.py: ``optional=True``), so a failed build does not fail
    the install; this test does, wherever a C++ compiler could have built it."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler here: the kernel is optional and the tensor path runs")
    assert native.available(), (
        f"{compiler} exists but the kernel is not built ({native.status()}); "
        "run `pip install -e .` again and read the compiler's error")


# --- helpers -----------------------------------------------------------------------------
def make_layers(channels, base, top, pool, norm, seed, dtype=torch.float64, act="relu"):
    """The same layer twice (same parameters): impl='native' and impl='tensor'."""
    return layer_pair(channels, base, top, pool, act, norm, seed, dtype,
                      impls=("native", "tensor"))


def spectral_run(layer, spec, n, w):
    """Output spectrum and gradients (spectrum, gamma, beta) of ``sum(layer(spec) * w)``."""
    spec = spec.detach().clone().requires_grad_()
    layer.zero_grad(set_to_none=True)
    out = layer.spectral_forward(spec, n)
    (out * w).sum().backward()
    grads = [spec.grad] + ([layer.gamma.grad, layer.beta.grad] if layer.gamma is not None
                           else [])
    return out.detach().clone(), [g.clone() for g in grads]


def rel(a, b):
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def compare(nat, ten, x, n, pool, seed):
    spec = map_spectrum(x)
    k_out = 2 * ((n // pool - 1) // 2) + 1
    w = torch.randn(k_out, k_out, *spec.shape[2:], dtype=x.dtype,
                    generator=torch.Generator().manual_seed(seed))
    out_n, grads_n = spectral_run(nat, spec, n, w)
    out_t, grads_t = spectral_run(ten, spec, n, w)
    assert out_n.shape == out_t.shape == w.shape
    return rel(out_n, out_t), [rel(a, b) for a, b in zip(grads_n, grads_t)]


# --- the same function as the tensor path ------------------------------------------------
native_cases = st.tuples(
    st.integers(1, 4),  # channels
    st.integers(1, 3),  # batch: 1..12 maps, all but 8 a partial tile of 8 (float64), 9..12
    #                     a whole tile then a partial one
    st.integers(6, 12),  # min_size
    st.integers(0, 8),  # max_size - min_size
    st.sampled_from([1, 1, 2, 3]),  # pool
    st.booleans(),  # norm
)


@needs_kernel
@SETTINGS
@given(case=native_cases, where=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_native_equals_the_tensor_path_in_output_and_gradients_float64(case, where, seed):
    channels, batch, base, extra, pool, norm = case
    top = base + extra
    n = base + round(where * extra)  # any input size in [min_size, max_size]
    nat, ten = make_layers(channels, base, top, pool, norm, seed)
    x = band_limited((batch, channels), n, seed)
    err_out, err_grads = compare(nat, ten, x, n, pool, seed + 1)
    assert len(err_grads) == (3 if norm else 1)
    assert err_out < 1e-12, err_out
    assert max(err_grads) < 1e-12, err_grads


@needs_kernel
@pytest.mark.parametrize("norm", [True, False])
def test_native_equals_the_tensor_path_float32(norm):
    """The paper's size range at 100 maps (six whole tiles of 16 and a partial one)."""
    nat, ten = make_layers(4, 8, 28, 1, norm, 0, dtype=torch.float32)
    x = band_limited((25, 4), 28, 0, dtype=torch.float32)
    err_out, err_grads = compare(nat, ten, x, 28, 1, 1)
    assert err_out < 1e-5, err_out
    assert max(err_grads) < 1e-5, err_grads


@needs_kernel
@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("pool", [2, 3])
def test_pooling_ties_share_the_gradient_as_the_tensor_path_does(pool, norm):
    """Maps with only a constant term give constant grids: every pooling window ties, and
    the kernel must split each window's gradient over its tied maxima as ``amax`` does (the
    random maps of the other tests never tie). Positive and negative constants, beside
    generic maps in the same tile."""
    nat, ten = make_layers(3, 6, 13, pool, norm, 10)
    n = 13
    spec = map_spectrum(band_limited((3, 3), n, 10))
    spec[:, :, 1] = 0  # the second sample's maps: constants only
    spec[0, 0, 1] = torch.tensor([0.7, -0.4, 1.3], dtype=spec.dtype)
    k_out = 2 * ((n // pool - 1) // 2) + 1
    w = torch.randn(k_out, k_out, 3, 3, dtype=spec.dtype,
                    generator=torch.Generator().manual_seed(10))
    out_n, grads_n = spectral_run(nat, spec, n, w)
    out_t, grads_t = spectral_run(ten, spec, n, w)
    assert grads_t[0][:, :, 1].abs().max() > 0.1  # the tied windows do pass gradient
    assert rel(out_n, out_t) < 1e-12
    # a constant map's variance is 0 up to rounding, which the norm's rsqrt(var + eps)^3
    # multiplies by ~3e7 in the gradient: the two paths' rounding differs there by ~1e-12,
    # a wrong split of a tied window by O(1)
    for a, b in zip(grads_n, grads_t):
        assert rel(a, b) < 1e-9


@needs_kernel
@pytest.mark.parametrize("pool, norm", [(1, True), (2, True), (1, False)])
def test_native_backward_is_the_derivative_of_its_forward(pool, norm):
    """gradcheck through ``layer(x)`` (maps in, maps out) at the input and, with the norm, at
    gamma and beta: 12 maps, so the tile of 8 maps is followed by a partial one."""
    layer, _ = make_layers(3, 6, 9, pool, norm, 5)
    x = band_limited((4, 3), 9, 5).requires_grad_()
    if not norm:
        assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-7)
        return
    gamma = layer.gamma.detach().clone().requires_grad_()
    beta = layer.beta.detach().clone().requires_grad_()

    def f(x, gamma, beta):
        return torch.func.functional_call(layer, {"gamma": gamma, "beta": beta}, (x,))

    assert torch.autograd.gradcheck(f, (x, gamma, beta), eps=1e-6, atol=1e-7)


# --- exact scale equivariance --------------------------------------------------------------
@needs_kernel
@SETTINGS
@given(case=st.tuples(st.integers(6, 12), st.integers(0, 8), st.sampled_from([1, 1, 2, 3]),
                      st.booleans()),
       seed=st.integers(0, 2**16))
def test_native_layer_commutes_with_scaling_at_every_size(case, seed):
    base, extra, pool, norm = case
    top = base + extra + pool
    layer, _ = make_layers(3, base, top, pool, norm, seed)
    x = band_limited((3, 3), top, seed)  # 9 maps: a whole tile and one more
    assert worst_error(layer, x, range(base, top), lambda s: s // pool) <= EXACT


# --- what is kept for backward -----------------------------------------------------------
def saved_tensors(layer, spec, n, backward=True):
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = layer.spectral_forward(spec, n)
    if backward and out.requires_grad:
        out.sum().backward()
    return out, saved


def expected_mask(x, base, tile):
    """ReLU's mask as the kernel lays it out (no norm, pool 1): per tile of maps, per
    evaluation grid ``D_g x`` (fourier_resize), per point ``u * g + v``, bit ``t`` set where
    map ``tile * i + t`` is positive there (padding maps: 0)."""
    n = x.shape[-1]
    maps = x.reshape(-1, n, n)
    nb = maps.shape[0]
    tiles = -(-nb // tile)
    parts = []
    for g, _, _ in ring_schedule(n, base, 1):
        pos = torch.zeros(tiles * tile, g * g, dtype=torch.bool)
        pos[:nb] = (fourier_resize(maps, g) > 0).reshape(nb, g * g)
        parts.append(pos.view(tiles, tile, g * g).transpose(1, 2))  # [tile, point, t]
    bits = torch.cat(parts, 1).to(torch.int64) << torch.arange(tile)
    per_point = bits.sum(-1)  # (tiles, points)
    if tile == 8:
        return per_point.to(torch.uint8).reshape(-1)
    lo, hi = per_point & 0xFF, per_point >> 8  # little-endian uint16
    return torch.stack([lo, hi], -1).to(torch.uint8).reshape(-1)


@needs_kernel
@pytest.mark.parametrize("dtype, tile", [(torch.float64, 8), (torch.float32, 16)])
def test_pool_1_keeps_one_uint8_mask_of_the_documented_size_and_no_grid(dtype, tile):
    base, n, bsz, ch = 8, 17, 5, 4  # 20 maps: partial tiles for both dtypes
    layer, ten = make_layers(ch, base, n, 1, True, 3, dtype=dtype)
    spec = map_spectrum(band_limited((bsz, ch), n, 3, dtype=dtype)).requires_grad_()
    sched = ring_schedule(n, base, 1)
    grid_elements = sum(g * g for g, _, _ in sched) * bsz * ch

    _, saved = saved_tensors(layer, spec, n)
    masks = [t for t in saved if t.dtype == torch.uint8]
    assert len(masks) == 1
    plan = native.native_plan(n, base, 1, dtype)
    assert plan.tile == tile
    assert plan.mask_bytes == sum(g * g for g, _, _ in sched) * tile // 8
    assert masks[0].numel() == -(-bsz * ch // tile) * plan.mask_bytes
    floats = [t for t in saved if t.is_floating_point()]
    assert floats and max(t.numel() for t in floats) <= spec.numel() < grid_elements
    assert not [t for t in floats if t.dim() == 4 and t.shape[1] == t.shape[2] != t.shape[0]]

    # the tensor path, for contrast, keeps the grids (float, every point of every map)
    _, saved_t = saved_tensors(ten, spec, n)
    assert not [t for t in saved_t if t.dtype == torch.uint8]
    assert sum(t.numel() for t in saved_t if t.is_floating_point()) >= grid_elements


@needs_kernel
def test_the_mask_is_relus_sign_per_grid_point():
    """Without the norm the grid of evaluation g is ``D_g x`` itself: the kept mask is its
    sign, bit by bit, in the layout the kernel's backward reads (13 maps: a partial tile)."""
    base, n = 8, 15
    layer, _ = make_layers(13, base, n, 1, False, 4)
    x = band_limited((1, 13), n, 4)
    _, saved = saved_tensors(layer, map_spectrum(x).requires_grad_(), n, backward=False)
    (mask,) = [t for t in saved if t.dtype == torch.uint8]
    assert torch.equal(mask, expected_mask(x, base, 8))


@needs_kernel
def test_pooled_layers_keep_no_mask_and_no_grid():
    layer, _ = make_layers(3, 8, 17, 2, True, 6)
    spec = map_spectrum(band_limited((2, 3), 17, 6)).requires_grad_()
    assert native.native_plan(17, 8, 2, torch.float64).mask_bytes == 0
    _, saved = saved_tensors(layer, spec, 17)
    assert not [t for t in saved if t.dtype == torch.uint8]
    assert max(t.numel() for t in saved if t.is_floating_point()) <= spec.numel()


@needs_kernel
def test_forward_without_grad_keeps_nothing_and_allocates_no_mask(monkeypatch):
    layer, _ = make_layers(3, 8, 16, 1, True, 7)
    spec = map_spectrum(band_limited((3, 3), 16, 7))
    calls = []
    real = grid_rings_native.mask_buffer
    monkeypatch.setattr(grid_rings_native, "mask_buffer",
                        lambda *a: calls.append(a) or real(*a))

    out_grad, saved = saved_tensors(layer, spec, 16, backward=False)
    assert len(calls) == 1 and [t for t in saved if t.dtype == torch.uint8]
    with torch.no_grad():
        out_plain, saved = saved_tensors(layer, spec, 16)
    assert len(calls) == 1 and saved == []
    assert torch.equal(out_plain, out_grad.detach())
    # nothing needs a gradient (no norm parameters, input without grad): no mask either
    plain, _ = make_layers(3, 8, 16, 1, False, 7)
    _, saved = saved_tensors(plain, spec, 16)
    assert len(calls) == 1 and not [t for t in saved if t.dtype == torch.uint8]


# --- where it runs, and where it refuses ---------------------------------------------------
@needs_kernel
def test_native_refuses_other_activations_and_fast_falls_back():
    x = band_limited((2, 3), 12, 8)
    with pytest.raises(ValueError, match="act='relu'.*'gelu'"):
        RingNonlinearity(3, 8, 12, act="gelu", impl="native").double()(x)
    fast, tensor = (RingNonlinearity(3, 8, 12, act="gelu", impl=i).double()
                    for i in ("fast", "tensor"))
    with torch.no_grad():
        fast.gamma.uniform_(0.5, 1.5)
        fast.beta.uniform_(-0.5, 0.5)
    tensor.load_state_dict(fast.state_dict())
    assert torch.equal(fast(x), tensor(x))
    # the fallback took the tensor path (grids kept); with ReLU, fast takes the kernel (mask)
    spec = map_spectrum(x).requires_grad_()
    _, saved = saved_tensors(fast, spec, 12)
    assert not [t for t in saved if t.dtype == torch.uint8]
    relu = RingNonlinearity(3, 8, 12, impl="fast").double()
    _, saved = saved_tensors(relu, spec, 12)
    assert len([t for t in saved if t.dtype == torch.uint8]) == 1


@needs_kernel
@pytest.mark.parametrize("dtype, device", [(torch.float16, "cpu"), (torch.bfloat16, "cpu"),
                                           (torch.float32, "meta")])
def test_native_refuses_inputs_it_cannot_compute(dtype, device):
    layer = RingNonlinearity(2, 8, 12, impl="native").to(dtype)
    x = torch.randn(1, 2, 10, 10, dtype=dtype, device=device)
    with pytest.raises(ValueError, match=f"{device} {dtype}"):
        layer(x)


def test_unknown_impl_is_refused_with_the_choices():
    assert IMPLS == ("fast", "tensor", "native", "reference")
    with pytest.raises(ValueError, match="fast, tensor, native, reference.*'cuda'"):
        RingNonlinearity(2, 8, 12, impl="cuda")


@needs_kernel
def test_status_says_built_on_one_line():
    line = native.status()
    assert line.startswith("built") and "\n" not in line
    isa, threads = line.split(", ")[1:]
    assert isa in ("AVX2+FMA", "portable (no AVX2+FMA on this CPU)")
    assert threads in ("OpenMP tasks", "thread pool (built without OpenMP)")
    assert (threads == "OpenMP tasks") == native.uses_openmp(native._library())


# --- threads ------------------------------------------------------------------------------
@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("pool", [1, 2])
def test_native_result_does_not_depend_on_the_thread_count(dtype, pool):
    """One worker thread takes the maps in fewer slices of whole tiles than two do, in
    parallel: every output and gradient is bit-identical."""
    nat, _ = make_layers(5, 8, 20, pool, True, 9, dtype=dtype)
    bsz, tile = 30, native.native_plan(20, 8, pool, dtype).tile  # 150 maps, the last tile partial
    spec = map_spectrum(band_limited((bsz, 5), 20, 9, dtype=dtype))
    k_out = 2 * ((20 // pool - 1) // 2) + 1
    w = torch.randn(k_out, k_out, bsz, 5, dtype=dtype, generator=torch.Generator().manual_seed(9))
    before = torch.get_num_threads()
    runs, splits = [], []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            splits.append(native._slices(5 * bsz, tile))
            runs.append(spectral_run(nat, spec, 20, w))
    finally:
        torch.set_num_threads(before)
    assert len(splits[0]) == native.TASKS_PER_WORKER < len(splits[1])  # the split differs
    (out1, grads1), (out2, grads2) = runs
    assert torch.equal(out1, out2)
    assert len(grads1) == len(grads2) == 3
    for a, b in zip(grads1, grads2):
        assert torch.equal(a, b)


# --- NaN, mixed dtypes, the FLOP count ---------------------------------------------------
@needs_kernel
@pytest.mark.parametrize("pool", [1, 2])
def test_a_nan_map_stays_nan_as_in_the_tensor_path(pool):
    """ReLU and the max-pool pass NaN on (``torch.relu``, ``amax``): a diverging map must not
    come out as zeros."""
    nat, ten = make_layers(2, 8, 16, pool, False, 3)
    spec = map_spectrum(band_limited((2, 2), 16, 3))
    spec[:, :, 0, 1] = float("nan")  # one map all NaN
    with torch.no_grad():
        out_n, out_t = nat.spectral_forward(spec, 16), ten.spectral_forward(spec, 16)
    assert torch.equal(out_n.isnan(), out_t.isnan())
    assert out_n[:, :, 0, 1].isnan().all()
    finite = ~out_t.isnan()
    assert rel(out_n[finite], out_t[finite]) < 1e-12


@needs_kernel
def test_parameters_of_another_dtype_never_reach_the_kernel():
    """A float32 input to a float64 layer: ``fast`` takes the tensor path (whose dtype error a
    user knows), ``native`` refuses with one line naming both dtypes; the kernel never reads
    float64 parameters as float32."""
    nat, ten = make_layers(2, 8, 16, 1, True, 4)
    spec = map_spectrum(band_limited((1, 2), 16, 4)).float()
    with pytest.raises(ValueError, match="float32.*float64"):
        nat.spectral_forward(spec, 16)
    nat.impl = "fast"
    assert nat._native_plan(spec, 16) is None


@needs_kernel
@pytest.mark.parametrize("pool", [1, 2])
def test_the_flop_counter_sees_the_kernel(pool):
    """``bench perf``'s count (``FlopCounterMode``) includes the kernel's products: its FLOP
    formulas give the plan's per-map forward and backward work times the maps."""
    from torch.utils.flop_counter import FlopCounterMode

    nat, _ = make_layers(3, 8, 20, pool, True, 5)
    spec = map_spectrum(band_limited((2, 3), 20, 5)).requires_grad_()
    plan = native.native_plan(20, 8, pool, torch.float64)
    with FlopCounterMode(display=False) as counter:
        nat.spectral_forward(spec, 20).sum().backward()
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert counts["scaleqbench.ring_kernel_forward"] == plan.flops_forward * 6
    assert counts["scaleqbench.ring_kernel_backward"] == plan.flops_backward * 6
    assert plan.flops_backward == plan.flops_forward if pool == 1 else (
        plan.flops_backward > plan.flops_forward)  # pool > 1 synthesises the grids again
