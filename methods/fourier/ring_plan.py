"""The matrices of the ring nonlinearity's fast path at one input size: its evaluation plan.

The layer (:mod:`methods.fourier.nonlinearity`) evaluates, at input size ``n``, one
base grid and one grid per higher output ring (:func:`~methods.fourier.basis.ring_schedule`).
:func:`build_plan` groups those evaluations into zero-padded stacks of similar size
(:class:`RingGroup`) and builds, per stack, what :class:`~methods.fourier.grid_rings.GridRings`
multiplies with: the real synthesis of every grid from the input spectrum
(``S_g X S_g^T``), the analysis rows of the one ring each grid contributes (or the
whole leading block, for the base grid), and the band weights of the grids'
instance-norm moments. Everything is built in float64, then cast once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scaleqbench.methods.fourier.basis import (
    band_mean_square,
    real_analysis,
    real_synthesis,
    ring_count,
    ring_schedule,
)

__all__ = ["RingGroup", "RingPlan", "build_plan"]

Schedule = list[tuple[int, int, int]]  # (grid, band, output ring) per evaluation


@dataclass
class RingGroup:
    """A zero-padded stack of grid evaluations of similar size (``R`` grids of ``M x M``)."""

    index: torch.Tensor  # which affine parameters (row of gamma / beta) each grid uses
    band_w: torch.Tensor  # (R, kin): mean square of each basis function on grid r, 0 off-band
    k: int  # input spectrum block used (2 * band + 1)
    size: int  # padded grid size M (multiple of the pool window)
    synth_stack: torch.Tensor  # (R, M, k): the real synthesis of each grid, zero-padded
    synth_stack_t: torch.Tensor  # (R, k, M)
    base: bool
    row0: int = 0  # first output row / column of the group's rings: 2 j_0 - 1
    ring_rows: torch.Tensor | None = None  # (R, 2, Mo): analysis rows of ring j
    ring_rows_t: torch.Tensor | None = None  # (R, Mo, 2)
    upto: torch.Tensor | None = None  # (R, Mo, 2J+1): analysis rows <= 2j, transposed
    upto_t: torch.Tensor | None = None  # (R, 2J+1, Mo)
    below: torch.Tensor | None = None  # (R, 2J+1, Mo): analysis rows < 2j - 1
    below_t: torch.Tensor | None = None  # (R, Mo, 2J+1)
    base_an: torch.Tensor | None = None  # (2J_b+1, Mo): the base grid's analysis
    base_an_t: torch.Tensor | None = None

    @property
    def dims(self) -> tuple[int, int, int]:
        """``(R, M, k)``: grids in the stack, their padded size, the spectrum block they read."""
        return len(self.index), self.size, self.k


@dataclass
class RingPlan:
    """Every group of one input size, in evaluation order (the base grid first)."""

    kin: int  # width of the input spectrum block the grids read (2 * max band + 1)
    groups: list[RingGroup]
    rings_out: int  # J(m)
    band_w: torch.Tensor  # (grids, kin): every group's band_w, stacked in evaluation order
    grid_index: torch.Tensor  # (grids,): every group's index, stacked


def _group_schedule(sched: Schedule, waste: float) -> list[list[int]]:
    """Split the non-base evaluations into contiguous groups whose padding stays below ``waste``."""
    groups: list[list[int]] = []
    cur: list[int] = []
    for i in range(1, len(sched)):
        cand = cur + [i]
        real = sum(sched[t][0] ** 2 for t in cand)
        if cur and len(cand) * sched[i][0] ** 2 > waste * real:
            groups.append(cur)
            cand = [i]
        cur = cand
    if cur:
        groups.append(cur)
    return groups


def _both(t: torch.Tensor, cast: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``t`` and its transpose (last two axes), contiguous, in the working dtype."""
    return t.to(**cast), t.transpose(-1, -2).contiguous().to(**cast)


def _synthesis_stack(sched: Schedule, idx: list[int], size: int, k: int) -> torch.Tensor:
    """``(R, M, k)``: the real synthesis of evaluations ``idx``, zero-padded to ``M`` rows and
    ``k`` basis functions (float64)."""
    s = torch.zeros(len(idx), size, k, dtype=torch.float64)
    for r, t in enumerate(idx):
        g, band, _ = sched[t]
        s[r, :g, :2 * band + 1] = real_synthesis(g, band)
    return s


def _synthesis_fields(s: torch.Tensor, cast: dict) -> dict[str, torch.Tensor]:
    """The stack ``s`` in the two layouts :class:`RingGroup` keeps (``synth_*``)."""
    stack, stack_t = _both(s, cast)
    return dict(synth_stack=stack, synth_stack_t=stack_t)


def _ring_analysis(sched: Schedule, idx: list[int], mo: int, k_out: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per evaluation ``t`` of ``idx`` (ring ``j``, pooled grid ``2j + 1`` padded to ``mo``):
    the analysis rows ``2j - 1, 2j`` of ring ``j``, the rows ``<= 2j`` and the rows
    ``< 2j - 1`` (float64, ``(R, 2, mo)``, ``(R, k_out, mo)``, ``(R, k_out, mo)``)."""
    rows = torch.zeros(len(idx), 2, mo, dtype=torch.float64)
    upto = torch.zeros(len(idx), k_out, mo, dtype=torch.float64)
    below = torch.zeros(len(idx), k_out, mo, dtype=torch.float64)
    for r, t in enumerate(idx):
        j = sched[t][2]
        o = 2 * j + 1
        a = real_analysis(o, j)
        rows[r, :, :o] = a[2 * j - 1:2 * j + 1]
        upto[r, :2 * j + 1, :o] = a
        below[r, :2 * j - 1, :o] = a[:2 * j - 1]
    return rows, upto, below


def _base_group(sched: Schedule, width: int, pool: int, cast: dict) -> RingGroup:
    """The base evaluation: all output rings ``<= J(m_b)`` come from its grid."""
    g, band, jb = sched[0]
    base_an, base_an_t = _both(real_analysis(g // pool, jb), cast)
    return RingGroup(
        index=torch.tensor([0], device=cast["device"]),
        band_w=band_mean_square([band], width, **cast),
        k=2 * band + 1, size=g, base=True, base_an=base_an, base_an_t=base_an_t,
        **_synthesis_fields(_synthesis_stack(sched, [0], g, 2 * band + 1), cast))


def _ring_group(sched: Schedule, idx: list[int], width: int, pool: int, k_out: int,
                cast: dict) -> RingGroup:
    """The stack of evaluations ``idx``, each contributing its one ring to the output."""
    size = max(sched[t][0] for t in idx)
    k = 2 * max(sched[t][1] for t in idx) + 1
    rows, upto, below = _ring_analysis(sched, idx, size // pool, k_out)
    ring_rows, ring_rows_t = _both(rows, cast)
    upto_t, upto = _both(upto, cast)
    below, below_t = _both(below, cast)
    jb = sched[0][2]
    return RingGroup(
        index=torch.tensor([sched[t][2] - jb for t in idx], device=cast["device"]),
        band_w=band_mean_square([sched[t][1] for t in idx], width, **cast),
        k=k, size=size, base=False, row0=2 * sched[idx[0]][2] - 1,
        ring_rows=ring_rows, ring_rows_t=ring_rows_t, upto=upto, upto_t=upto_t,
        below=below, below_t=below_t, **_synthesis_fields(_synthesis_stack(sched, idx, size, k),
                                                          cast))


def build_plan(n: int, base: int, pool: int, waste: float, dtype: torch.dtype,
               device: torch.device) -> RingPlan:
    """All matrices the fast path needs at input size ``n`` (built in float64, then cast)."""
    sched = ring_schedule(n, base, pool)
    jout = ring_count(n // pool)
    width = 2 * max(s[1] for s in sched) + 1
    cast = dict(dtype=dtype, device=device)
    groups = [_base_group(sched, width, pool, cast)]
    groups += [_ring_group(sched, idx, width, pool, 2 * jout + 1, cast)
               for idx in _group_schedule(sched, waste)]
    return RingPlan(kin=width, groups=groups, rings_out=jout,
                    band_w=torch.cat([g.band_w for g in groups]),
                    grid_index=torch.cat([g.index for g in groups]))
