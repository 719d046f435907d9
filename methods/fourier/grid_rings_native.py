"""The ring nonlinearity on real spectra by the CPU kernel, as one autograd function.

:class:`NativeGridRings` is :class:`~methods.fourier.grid_rings.GridRings` (same inputs but
the affine per evaluation and channel, same output, same gradients) computed by
:mod:`methods.fourier.native`: the kernel takes the instance norm's moments from each tile's
spectrum as well, so forward is one kernel call and backward another, and what autograd
keeps is the input spectrum, the affine and, for ``pool = 1``, ReLU's mask (one bit per grid
point and map; the grids themselves are synthesised again only where a max-pool needs them).
The per-map gradients at the affine are summed over the batch here.

The two kernel calls are PyTorch custom operators (``scaleqbench::ring_kernel_forward`` and
``_backward``) with a FLOP formula each (:attr:`~methods.fourier.native.NativePlan.flops_forward`
per map), so that ``torch.utils.flop_counter.FlopCounterMode`` -- ``bench perf``'s work count --
sees the kernel's products as it sees a matrix product.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from torch.utils.flop_counter import register_flop_formula

from scaleqbench.methods.fourier.native import (
    NativePlan,
    as_operand,
    mask_buffer,
    native_plan,
    operand,
    run_backward,
    run_forward,
)
from scaleqbench.methods.fourier.workspace import Workspace, workspace_empty

__all__ = ["NativeGridRings"]

@torch.library.custom_op("scaleqbench::ring_kernel_forward", mutates_args=("z", "mask"),
                         device_types="cpu")
def _forward_op(spec: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, z: torch.Tensor,
                mask: torch.Tensor, n: int, base: int, pool: int, eps: float) -> None:
    run_forward(native_plan(n, base, pool, spec.dtype), spec, operand(gamma), operand(beta), eps,
                z, operand(mask))


@torch.library.custom_op("scaleqbench::ring_kernel_backward",
                         mutates_args=("g_spec", "g_affine"), device_types="cpu")
def _backward_op(spec: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, gz: torch.Tensor,
                 mask: torch.Tensor, g_spec: torch.Tensor, g_affine: torch.Tensor, n: int,
                 base: int, pool: int, eps: float) -> None:
    g_aff = operand(g_affine)
    g_gamma, g_beta = (g_aff[0], g_aff[1]) if g_aff is not None else (None, None)
    run_backward(native_plan(n, base, pool, spec.dtype), spec, operand(gamma), operand(beta), eps,
                 gz, g_spec, g_gamma, g_beta, operand(mask))


@register_flop_formula(torch.ops.scaleqbench.ring_kernel_forward)
def _forward_flops(spec_shape, *args, n: int | None = None, **kwargs) -> int:
    n, base, pool = args[4:7] if n is None else (n, kwargs["base"], kwargs["pool"])
    return native_plan(n, base, pool, torch.float32).flops_forward * spec_shape[2]


@register_flop_formula(torch.ops.scaleqbench.ring_kernel_backward)
def _backward_flops(spec_shape, *args, n: int | None = None, **kwargs) -> int:
    n, base, pool = args[6:9] if n is None else (n, kwargs["base"], kwargs["pool"])
    return native_plan(n, base, pool, torch.float32).flops_backward * spec_shape[2]


class NativeGridRings(torch.autograd.Function):
    """``(spec, gamma, beta) -> z``: the output spectrum of a ring nonlinearity.

    ``spec`` is ``(K, K, B, C)``; ``gamma`` and ``beta`` are the norm's affine of every
    evaluation of ``plan`` and channel, ``(E, C)`` (``None``: no norm); ``z`` is
    ``(K', K', B, C)``, from ``ws`` (as is the gradient at ``spec``).
    """

    @staticmethod
    def forward(ctx, spec4, gamma, beta, plan: NativePlan, eps: float, ws: Workspace | None):
        spec4 = spec4.contiguous()
        k, _, bsz, ch = spec4.shape
        nb = bsz * ch
        if gamma is not None:
            gamma, beta = gamma.contiguous(), beta.contiguous()
        z4 = workspace_empty(ws, (plan.kout, plan.kout, bsz, ch), spec4)
        mask = mask_buffer(plan, nb) if any(ctx.needs_input_grad[:3]) else None
        torch.ops.scaleqbench.ring_kernel_forward(
            spec4.view(k, k, nb), as_operand(gamma), as_operand(beta),
            z4.view(plan.kout, plan.kout, nb), as_operand(mask), plan.n, plan.base, plan.pool, eps)
        ctx.plan, ctx.eps, ctx.ws = plan, eps, ws
        ctx.save_for_backward(spec4, gamma, beta, mask)
        return z4

    @staticmethod
    @once_differentiable
    def backward(ctx, gz4):
        spec4, gamma, beta, mask = ctx.saved_tensors
        plan = ctx.plan
        k, _, bsz, ch = spec4.shape
        nb = bsz * ch
        g_spec4 = workspace_empty(ctx.ws, spec4.shape, spec4)
        if plan.kin < k:  # the kernel writes the leading kin x kin block only
            g_spec4.zero_()
        # per evaluation and map, the gradients at gamma and at beta
        parts = spec4.new_empty(2, plan.evaluations, nb) if gamma is not None else as_operand(None)
        torch.ops.scaleqbench.ring_kernel_backward(
            spec4.view(k, k, nb), as_operand(gamma), as_operand(beta),
            gz4.contiguous().view(plan.kout, plan.kout, nb), as_operand(mask),
            g_spec4.view(k, k, nb), parts, plan.n, plan.base, plan.pool, ctx.eps)
        g_gamma = g_beta = None
        if gamma is not None:  # per map -> per channel: sum over the batch
            g_gamma, g_beta = parts.view(2, plan.evaluations, bsz, ch).sum(2).unbind(0)
        return g_spec4, g_gamma, g_beta, None, None, None
