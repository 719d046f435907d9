"""The ring nonlinearity on real spectra as one autograd function, evaluated in cache-sized chunks.

Given the input's real spectrum and the instance norm's affine (``gamma``, ``beta``)
per grid and map, :class:`GridRings` takes every grid's mean and variance from the
spectrum (:mod:`methods.fourier.moments`), synthesises every evaluation grid of
``scale * x + shift`` (the affine is applied to the ``k x k`` spectrum: the constant basis
function is 1 on every grid, so it commutes with the synthesis), applies ``act`` and the
max-pool, and analyses the rings each grid contributes (see
:mod:`methods.fourier.nonlinearity` for the definition) straight into the output spectrum.

Why a function of its own: written with ordinary tensor ops, every stage
materialises a full stack of grids (hundreds of MB per layer), and autograd keeps
several of them (the grids, the affine output, the activation output) and
streams each through memory again in backward. Here the maps are processed in
chunks whose grids stay in cache, and only one grid-sized tensor per chunk is kept for
backward (the activations for ReLU, whose sign is the mask; the pre-activations
otherwise). Backward takes the gradient at the pre-activations back to the ``k x k``
spectra at once (``G = S^T g S``) and reads the norm's gradients there:
``sum g * grid = <G, x>`` and ``sum g = G[0, 0]``, so no grid-sized product or reduction
is formed. The moments live inside too, so that neither they nor their gradients
ever need a full-size tensor: the only large ones are the output spectrum and the
input gradient, from the model's :class:`~methods.fourier.workspace.Workspace`.
On the CPU whole slices of maps are the tasks of a few single-threaded workers
(:mod:`methods.fourier.parallel`: one join per layer, not one per operation). The result
is the same function with the same gradient (tested against the per-ring reference to
float64 precision); it is only once differentiable.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from scaleqbench.methods.fourier.chunking import chunk_slices
from scaleqbench.methods.fourier.moments import band_energy, band_energy_backward
from scaleqbench.methods.fourier.parallel import even_slices, run_tasks, task_count, workers
from scaleqbench.methods.fourier.workspace import Workspace, workspace_empty

__all__ = ["GridRings"]


def _activate(pre: torch.Tensor, act, relu: bool) -> torch.Tensor:
    return torch.relu_(pre) if relu else act(pre)


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm``, as one ``mm`` when the batch is a single matrix (one grid per stack, the
    default): PyTorch's CPU ``bmm`` of a batch of one measured 2x slower than ``mm`` on the
    same ``(27, 27) @ (27, 38394)`` product."""
    if a.shape[0] == 1:
        return torch.mm(a[0], b[0]).unsqueeze(0)
    return torch.bmm(a, b)


def _pool(y: torch.Tensor, pool: int) -> torch.Tensor:
    """``p x p`` max-pool of ``(R, M, M, c)`` grids (maps last), as two reductions."""
    if pool == 1:
        return y
    r, size, _, c = y.shape
    mo = size // pool
    return y.view(r, size, mo, pool, c).amax(dim=3).view(r, mo, pool, mo, c).amax(dim=2)


def _unpool(grad: torch.Tensor, y: torch.Tensor, pooled: torch.Tensor, pool: int) -> torch.Tensor:
    """Gradient of :func:`_pool`: each window's gradient goes to the entries equal to its maximum.

    Ties share it evenly, as ``amax``'s own backward does.
    """
    if pool == 1:
        return grad
    r, size, _, c = y.shape
    mo = size // pool
    y6 = y.view(r, mo, pool, mo, pool, c)
    hit = (y6 == pooled[:, :, None, :, None, :]).to(grad.dtype)
    count = hit.sum(dim=(2, 4), keepdim=True)
    return (hit * (grad[:, :, None, :, None, :] / count)).view(r, size, size, c)


def _synthesise(grp, xr: torch.Tensor, c: int) -> torch.Tensor:
    """Grids ``(R, M, M, c)`` ([r, u, v, i], maps last) of ``c`` maps from their spectra ``xr``
    ``(R, k, k * c)`` ([r, a, (b, i)], one spectrum per grid: the norm's affine folded in).

    ``S_r X_r S_r^T`` as two products whose long axis is the maps: the left factors as one
    batched product over the stack, the right ones batched over (grid, row). With the maps
    last, every product is a ``(M, k) @ (k, c)``-shaped GEMM (measured 1.2-4x faster per grid
    on the CPU than the maps-in-the-middle layout, whose right factor was a thin
    ``(c, k) @ (k, M)`` product over a strided operand).
    """
    r, size, k = grp.dims
    left = _bmm(grp.synth_stack, xr).view(r, size, k, c)  # [r, u, b, i]
    return torch.matmul(grp.synth_stack[:, None], left)


def _synthesise_t(grp, g_grids: torch.Tensor, c: int) -> torch.Tensor:
    """Transpose of :func:`_synthesise`: ``S_r^T G_r S_r`` per grid, ``(R, k, k, c)``."""
    r, size, k = grp.dims
    right = torch.matmul(grp.synth_stack_t[:, None], g_grids)  # [r, u, b, i]
    return _bmm(grp.synth_stack_t, right.view(r, size, k * c)).view(r, k, k, c)


def _affine_spectra(xs: torch.Tensor, sc: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """``(R, k, k * c)``: the spectrum of ``scale * grid + shift`` on every grid of a stack.

    The affine commutes with the synthesis (the constant basis function is 1 on every grid),
    so it is applied to the ``k x k`` spectrum instead of the ``M x M`` grid, inside the copy
    that makes the chunk contiguous anyway.
    """
    k, _, c = xs.shape
    xr = torch.mul(xs[None], sc[:, None, None, :])
    xr[:, 0, 0] += sh
    return xr.view(-1, k, k * c)


def _analyse(grp, yp: torch.Tensor, z: torch.Tensor, sl: slice) -> None:
    """Add the rings that the pooled activations ``yp`` ``(R, mo, mo, c)`` define to
    ``z[..., sl]`` (``z`` is ``(K, K, N)``)."""
    r, mo, _, c = yp.shape
    k_out = z.shape[0]
    if grp.base:
        lead = grp.base_an.shape[0]
        t1 = (grp.base_an @ yp.view(mo, mo * c)).view(lead, mo, c)  # [a, v, i]
        z[:lead, :lead, sl] = torch.matmul(grp.base_an, t1)
        return
    lo, hi = grp.row0, grp.row0 + 2 * r
    # rows 2j-1, 2j of ring j (all columns <= 2j), then its columns below those rows
    left = _bmm(grp.ring_rows, yp.view(r, mo, mo * c)).view(r, 2, mo, c)  # [r, t, v, i]
    z[lo:hi, :, sl] += torch.matmul(grp.upto_t[:, None], left).view(2 * r, k_out, c)
    right = torch.matmul(grp.ring_rows[:, None], yp).view(r, mo, 2 * c)  # [r, u, (t, i)]
    cols = _bmm(grp.below, right).view(r, k_out, 2, c)
    z[:, lo:hi, sl] += cols.transpose(0, 1).reshape(k_out, 2 * r, c)


def _analyse_t(grp, gz: torch.Tensor, sl: slice, mo: int) -> torch.Tensor:
    """Transpose of :func:`_analyse`: the gradient at ``yp``, ``(R, mo, mo, c)``."""
    c, k_out = sl.stop - sl.start, gz.shape[0]
    if grp.base:
        lead = grp.base_an.shape[0]
        g1 = torch.matmul(grp.base_an_t, gz[:lead, :lead, sl])  # [a, v, i]
        return (grp.base_an_t @ g1.reshape(lead, mo * c)).view(1, mo, mo, c)
    r = len(grp.index)
    lo, hi = grp.row0, grp.row0 + 2 * r
    g_rows = gz[lo:hi, :, sl].reshape(r, 2, k_out, c)
    g_left = torch.matmul(grp.upto[:, None], g_rows).view(r, 2, mo * c)  # [r, t, (v, i)]
    g_yp = _bmm(grp.ring_rows_t, g_left).view(r, mo, mo, c)
    g_cols = gz[:, lo:hi, sl].reshape(k_out, r, 2 * c).transpose(0, 1)  # [r, a, (t, i)]
    g_right = _bmm(grp.below_t, g_cols).view(r, mo, 2, c)  # [r, u, t, i]
    return g_yp.add_(torch.matmul(grp.ring_rows_t[:, None], g_right))


def _activation_grad(g_yp: torch.Tensor, held: torch.Tensor, pool: int, act,
                     relu: bool) -> torch.Tensor:
    """Gradient at the pre-activation grids of a chunk from that at its pooled activations;
    ``held`` is what forward kept: the activations (relu) or the pre-activations."""
    if relu:
        if pool > 1:
            g_yp = _unpool(g_yp, held, _pool(held, pool), pool)
        return torch.ops.aten.threshold_backward(g_yp, held, 0)
    with torch.enable_grad():
        p = held.detach().requires_grad_()
        yp = _pool(act(p), pool)
    return torch.autograd.grad(yp, p, g_yp)[0]


def _affine(mean: torch.Tensor, sq: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
            eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The instance norm as an affine map per grid: ``(scale, shift)``, each ``(grids, N)``."""
    var = (sq - mean.square()).clamp_min(0.0)
    scale = gamma * torch.rsqrt(var + eps)
    return scale, beta - mean * scale


def _tasks(plan, nb: int, budget: int, device) -> tuple[list[slice], int]:
    """The slices of maps that :func:`~methods.fourier.parallel.run_tasks` hands out, each about
    one chunk of the largest stack, and how many workers take them."""
    n_workers = workers(device)
    per_map = max(r * size * size for r, size, _ in (g.dims for g in plan.groups))
    return list(even_slices(nb, task_count(nb * per_map, budget, n_workers))), n_workers


def _chunks(plan, task: slice, budget: int):
    """``(group, its first grid's row of scale / shift, chunk of maps)`` of one task, in
    evaluation order: every stack's chunks of the task's maps."""
    r0 = 0
    for grp in plan.groups:
        r, size, _ = grp.dims
        for sl in chunk_slices(task.stop - task.start, r * size * size, budget):
            yield grp, r0, slice(task.start + sl.start, task.start + sl.stop)
        r0 += r


class GridRings(torch.autograd.Function):
    """``(spec, gamma, beta) -> z``: the output spectrum of a ring nonlinearity.

    ``spec`` is ``(K, K, B, C)`` (real spectra of ``N = B C`` maps, frequency-major);
    ``gamma`` and ``beta`` are the instance norm's affine per grid and map, ``(grids, N)``
    in the order of ``plan.groups`` (row 0 the base grid), or ``None`` (no norm). The
    norm's moments come from the spectrum (:mod:`methods.fourier.moments`). ``z`` is
    ``(K', K', B, C)``, ``K' = 2 J(m) + 1``: the base evaluation's rings, and ring ``j`` of
    grid ``j`` for every higher ring. ``z`` and the gradient at ``spec`` come from ``ws``.
    """

    @staticmethod
    def forward(ctx, spec4, gamma, beta, plan, pool, act, relu, budget, eps,
                ws: Workspace | None):
        k_full, _, bsz, ch = spec4.shape
        nb, kin = bsz * ch, plan.kin
        spec = spec4.reshape(k_full, k_full, nb)[:kin, :kin]
        if gamma is not None:
            sq = band_energy(spec, plan.band_w, budget)
            scale, shift = _affine(spec[0, 0], sq, gamma, beta, eps)
        else:  # no norm: every grid as it is
            sq = None
            scale = spec.new_ones(len(plan.grid_index), nb)
            shift = spec.new_zeros(len(plan.grid_index), nb)
        k_out = 2 * plan.rings_out + 1
        z4 = workspace_empty(ws, (k_out, k_out, bsz, ch), spec).zero_()
        z = z4.view(k_out, k_out, nb)
        keep = any(ctx.needs_input_grad[:3])
        tasks, n_workers = _tasks(plan, nb, budget, spec.device)
        saved: list[list[list[torch.Tensor]]] = [[] for _ in tasks]  # [task][group][chunk]

        def work(t: int) -> None:  # one slice of maps through every grid (disjoint z columns)
            for grp, r0, sl in _chunks(plan, tasks[t], budget):
                r, size, k = grp.dims
                c = sl.stop - sl.start
                sc, sh = scale[r0:r0 + r, sl], shift[r0:r0 + r, sl]
                pre = _synthesise(grp, _affine_spectra(spec[:k, :k, sl], sc, sh), c)
                y = _activate(pre, act, relu)  # in place for relu: y > 0 exactly where pre > 0
                if keep:  # what backward needs of the grids: see _activation_grad
                    saved[t].append(y if relu else pre)
                _analyse(grp, _pool(y, pool), z, sl)

        run_tasks(work, len(tasks), n_workers)
        ctx.plan, ctx.pool, ctx.act, ctx.relu, ctx.budget = plan, pool, act, relu, budget
        ctx.eps, ctx.ws, ctx.norm, ctx.tasks = eps, ws, gamma is not None, tasks
        # the grids go through save_for_backward too, not onto ctx: what autograd keeps for
        # backward is then visible to saved-tensor hooks (bench perf's memory estimate)
        ctx.chunks = [len(held) for held in saved]
        ctx.save_for_backward(spec4, gamma, beta, sq, scale, shift,
                              *(g for held in saved for g in held))
        return z4

    @staticmethod
    @once_differentiable
    def backward(ctx, gz4):
        spec4, gamma, beta, sq, scale, shift, *flat = ctx.saved_tensors
        held_of, start = [], 0
        for n in ctx.chunks:
            held_of.append(flat[start:start + n])
            start += n
        plan, pool, act, relu, tasks = ctx.plan, ctx.pool, ctx.act, ctx.relu, ctx.tasks
        k_full, _, bsz, ch = spec4.shape
        nb, kin = bsz * ch, plan.kin
        spec = spec4.reshape(k_full, k_full, nb)[:kin, :kin]
        gz = gz4.reshape(gz4.shape[0], gz4.shape[1], nb)
        g_spec4 = workspace_empty(ctx.ws, spec4.shape, spec4).zero_()
        g_spec = g_spec4.view(k_full, k_full, nb)
        g_scale = torch.zeros_like(scale) if ctx.norm else None
        g_shift = torch.zeros_like(shift) if ctx.norm else None

        def work(t: int) -> None:  # the transpose of forward's task t (disjoint map columns)
            for (grp, r0, sl), held in zip(_chunks(plan, tasks[t], ctx.budget), held_of[t]):
                r, size, k = grp.dims
                g_pre = _activation_grad(_analyse_t(grp, gz, sl, size // pool), held, pool,
                                         act, relu)
                # everything else through the k x k spectra: G_r = S_r^T g_pre S_r
                g = _synthesise_t(grp, g_pre, sl.stop - sl.start)
                if ctx.norm:  # <g_pre, grid> = <G_r, X>, sum g_pre = G_r[0, 0]
                    g_scale[r0:r0 + r, sl] = (g * spec[:k, :k, sl]).sum(dim=(1, 2))
                    g_shift[r0:r0 + r, sl] = g[:, 0, 0]
                if r == 1:  # one grid per stack (the default): no temporary
                    g_spec[:k, :k, sl].addcmul_(g[0], scale[r0, sl])
                else:
                    g_spec[:k, :k, sl] += (g * scale[r0:r0 + r, None, None, sl]).sum(0)

        run_tasks(work, len(tasks), workers(spec.device))
        g_gamma = g_beta = None
        if ctx.norm:
            # the small (grids, N) algebra of the norm by autograd; the moments' own
            # transpose by hand, into the same gradient buffer
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_() for t in (spec[0, 0], sq, gamma, beta)]
                outs = _affine(*leaves, ctx.eps)
            g_mean, g_sq, g_gamma, g_beta = torch.autograd.grad(outs, leaves, (g_scale, g_shift))
            band_energy_backward(spec, plan.band_w, g_sq, g_spec, ctx.budget)
            g_spec[0, 0] += g_mean
        return (g_spec4, g_gamma, g_beta) + (None,) * 7
