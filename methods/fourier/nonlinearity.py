"""The scale-equivariant nonlinearity and pooling, computed for all rings at once.

Definition (Rahman & Yeh 2023, made exact at every size). The input is a
band-limited map of size ``n``; the output has size ``m = n // p`` (``p`` the
pooling window, ``p = 1``: no pooling). Let ``b`` be the layer's minimum input
size, ``m_b = b // p``. With ``J(s) = (s - 1) // 2``:

* output rings ``0 .. J(m_b)`` are those rings of the DFT of
  ``pool_p(act(norm_0(D_{p m_b} x)))`` (one evaluation on the base grid);
* output ring ``j > J(m_b)`` is ring ``j`` of the DFT of
  ``pool_p(act(norm_j(D_{p(2j+1)} x)))``, evaluated on the ``p(2j+1)`` grid.

``D_g`` is :func:`datasets.scaling.fourier_resize` (keep the rings a size-``g``
map holds, synthesise on the ``g x g`` grid), ``pool_p`` is a ``p x p`` max-pool
and ``norm_j`` an instance norm over that grid with its own affine per grid (no
batch statistics: train and eval agree and sizes never mix). Output ring ``j``
reads only input rings ``<= J(p(2j+1))``, which every ``D_s x`` with
``s // p >= 2j + 1`` holds unchanged; hence the layer commutes with scaling for
every input size ``s >= b``: ``layer(D_s x) == D_{s // p} layer(x)`` (odd and
even sizes alike, float precision). The official implementation is exact only for
sizes congruent to the input size modulo ``p``.

Fast implementation. The grids are synthesised from the input's real spectrum
by separable matrix products (``S_g X S_g^T``), grouped into a few zero-padded
stacks of similar size. The instance-norm moments of every grid come from the
spectrum (Parseval: the real basis is orthogonal on every grid that resolves it),
never from the grids. Only ring ``j`` of each evaluated grid is analysed (two
thin matrix products), and the output spectrum is assembled by concatenation and
synthesised once. Every step is a batched GEMM or an elementwise op with the
grid index as the leading batch axis, on CPU and CUDA alike. The plainly written
per-ring version lives in :mod:`methods.fourier.reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from methods.fourier.basis import band_mean_square, real_analysis, real_synthesis, ring_count

__all__ = ["RingNonlinearity", "ACTIVATIONS", "ring_schedule"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.1),
}


def ring_schedule(n: int, base: int, pool: int) -> list[tuple[int, int, int]]:
    """The evaluations of a layer at input size ``n``: ``(grid, band, output ring)`` each.

    The first entry is the base evaluation (its "ring" is the highest base ring,
    all rings up to it are taken from it); each further entry yields one ring.
    """
    m, mb = n // pool, base // pool
    if mb < 1 or n < base:
        raise ValueError(f"input size {n} is below the layer's minimum size {base}")
    out = [(pool * mb, ring_count(pool * mb), ring_count(mb))]
    for j in range(ring_count(mb) + 1, ring_count(m) + 1):
        g = pool * (2 * j + 1)
        out.append((g, ring_count(g), j))
    return out


@dataclass
class _Group:
    """A zero-padded stack of grid evaluations of similar size."""

    index: torch.Tensor  # which affine parameters (row of gamma / beta) each grid uses
    band_w: torch.Tensor  # (R, kin): mean square of each basis function on grid r, 0 off-band
    k: int  # input spectrum block used (2 * band + 1)
    size: int  # padded grid size M (multiple of the pool window)
    synth: torch.Tensor  # (R, M, k)
    synth_t: torch.Tensor  # (R, k, M)
    base: bool
    ring_rows: torch.Tensor | None = None  # (R, 2, Mo): analysis rows of ring j
    ring_rows_t: torch.Tensor | None = None  # (R, Mo, 2)
    upto: torch.Tensor | None = None  # (R, Mo, 2J+1): analysis rows <= 2j, transposed
    below: torch.Tensor | None = None  # (R, 2J+1, Mo): analysis rows < 2j - 1
    base_an: torch.Tensor | None = None  # (2J+1, Mo) for the base grid
    base_an_t: torch.Tensor | None = None


@dataclass
class _Plan:
    analysis: torch.Tensor  # (kin, n)
    analysis_t: torch.Tensor  # (n, kin)
    out_synth: torch.Tensor  # (m, 2J+1)
    out_synth_t: torch.Tensor
    groups: list[_Group]
    rings_out: int  # J(m)
    rings_base: int  # J(m_b)


def _group_schedule(sched: list[tuple[int, int, int]], waste: float) -> list[list[int]]:
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


def build_plan(n: int, base: int, pool: int, waste: float, dtype: torch.dtype,
               device: torch.device) -> _Plan:
    """All matrices the fast path needs at input size ``n`` (built in float64, then cast)."""
    sched = ring_schedule(n, base, pool)
    m = n // pool
    jout, jb = ring_count(m), sched[0][2]
    kin = max(s[1] for s in sched)
    f64 = dict(dtype=torch.float64)
    cast = dict(dtype=dtype, device=device)
    k_out = 2 * jout + 1

    def synth_stack(idx: list[int], size: int, k: int) -> torch.Tensor:
        s = torch.zeros(len(idx), size, k, **f64)
        for r, t in enumerate(idx):
            g, band, _ = sched[t]
            s[r, :g, :2 * band + 1] = real_synthesis(g, band)
        return s

    groups: list[_Group] = []
    # base evaluation: all rings <= J(m_b) come from it
    g, band, _ = sched[0]
    s = synth_stack([0], g, 2 * band + 1)
    an = torch.zeros(k_out, g // pool, **f64)
    an[:2 * jb + 1] = real_analysis(g // pool, jb)
    groups.append(_Group(
        index=torch.tensor([0], device=device),
        band_w=band_mean_square([band], 2 * kin + 1, **cast),
        k=2 * band + 1, size=g,
        synth=s.to(**cast),
        synth_t=s.transpose(1, 2).contiguous().to(**cast),
        base=True, base_an=an.to(**cast), base_an_t=an.T.contiguous().to(**cast)))
    for idx in _group_schedule(sched, waste):
        size = max(sched[t][0] for t in idx)
        k = 2 * max(sched[t][1] for t in idx) + 1
        s = synth_stack(idx, size, k)
        mo = size // pool
        rows = torch.zeros(len(idx), 2, mo, **f64)
        upto = torch.zeros(len(idx), k_out, mo, **f64)
        below = torch.zeros(len(idx), k_out, mo, **f64)
        for r, t in enumerate(idx):
            j = sched[t][2]
            o = 2 * j + 1
            a = real_analysis(o, j)
            rows[r, :, :o] = a[2 * j - 1:2 * j + 1]
            upto[r, :2 * j + 1, :o] = a
            below[r, :2 * j - 1, :o] = a[:2 * j - 1]
        groups.append(_Group(
            index=torch.tensor([sched[t][2] - jb for t in idx], device=device),
            band_w=band_mean_square([sched[t][1] for t in idx], 2 * kin + 1,
                                    **cast), k=k, size=size,
            synth=s.to(**cast),
            synth_t=s.transpose(1, 2).contiguous().to(**cast), base=False,
            ring_rows=rows.to(**cast), ring_rows_t=rows.transpose(1, 2).contiguous().to(**cast),
            upto=upto.transpose(1, 2).contiguous().to(**cast), below=below.to(**cast)))
    an_in = real_analysis(n, kin)
    q = real_synthesis(m, jout)
    return _Plan(analysis=an_in.to(**cast), analysis_t=an_in.T.contiguous().to(**cast),
                 out_synth=q.to(**cast), out_synth_t=q.T.contiguous().to(**cast),
                 groups=groups, rings_out=jout, rings_base=jb)


def _sep(x: torch.Tensor, left_t: torch.Tensor, right_t: torch.Tensor) -> torch.Tensor:
    """``L x R^T`` on the last two axes of ``x`` (N, a, b), given ``L^T`` and ``R^T``.

    Two plain 2-D GEMMs with the batch folded into the rows (a batched 3-D @ 2-D
    product takes a per-matrix path in backward): ``x R^T``, then its transpose
    times ``L^T`` gives ``(L x R^T)^T``; a final transpose (a view) restores the
    orientation.
    """
    n, a, b = x.shape
    m2, m1 = right_t.shape[1], left_t.shape[1]
    t = (x.reshape(n * a, b) @ right_t).view(n, a, m2).transpose(1, 2).reshape(n * m2, a)
    return (t @ left_t).view(n, m2, m1).transpose(1, 2)


def ring_nonlinearity_fast(x: torch.Tensor, plan: _Plan, pool: int, gamma: torch.Tensor | None,
                           beta: torch.Tensor | None, act: str, eps: float) -> torch.Tensor:
    """Batched evaluation of the layer defined in the module docstring; ``x`` is (B, C, n, n)."""
    bsz, ch, n, _ = x.shape
    nb = bsz * ch
    # input spectrum, frequency-major in its first axis: spec[a, i, b] = (F x_i F^T)[a, b]
    # one 2-D GEMM (a batched 3-D @ 2-D product falls back to a per-matrix loop in backward)
    half = (x.reshape(nb * n, n) @ plan.analysis_t).view(nb, n, -1).transpose(0, 1).reshape(n, -1)
    spec = (plan.analysis @ half).view(-1, nb, plan.analysis.shape[0])
    act_fn = ACTIVATIONS[act]
    if gamma is not None:
        # grid moments from the spectrum (Parseval, see band_mean_square): the mean of a grid
        # is the constant coefficient, its mean square a weighted energy of its band -- no
        # passes over (or gradients through) the big grid tensors
        kin = spec.shape[0]
        energy = spec.square().view(kin, nb * kin)
        mean = spec[0, :, 0]
    rows, cols, z_hat = [], [], None
    k_out = 2 * plan.rings_out + 1
    for grp in plan.groups:
        r, size, k = grp.synth.shape[0], grp.size, grp.k
        # grids[r, u, i, v] = sum_{a,b} S_r[u, a] X_i[a, b] S_r[v, b]; both products are batched
        # GEMMs over the grids (the spectrum is shared, broadcast without a copy), and the
        # intermediate comes out in the layout the second product needs -- no transposes
        xg = spec[:k, :, :k].reshape(1, k * nb, k).expand(r, k * nb, k)
        t = torch.bmm(xg, grp.synth_t)  # (R, k*N, M): contract b
        grids = torch.bmm(grp.synth, t.view(r, k, nb * size)).view(r, size, nb, size)
        if gamma is not None:
            # mean square of grid r: sum over a, b of X[a, b]^2 w_r[a] w_r[b] (two products)
            left = (grp.band_w @ energy).view(r, nb, kin)
            sq = (left * grp.band_w[:, None, :]).sum(-1)  # (R, N)
            var = (sq - mean.square()).clamp_min(0.0)
            gam = gamma[grp.index].repeat(1, bsz)  # (R, N): channel of row i is i % C
            scale = gam * torch.rsqrt(var + eps)
            shift = beta[grp.index].repeat(1, bsz) - mean * scale
            pre = torch.addcmul(shift[:, None, :, None], grids, scale[:, None, :, None])
        else:
            pre = grids
        # in place is safe: neither the affine nor the synthesis product saves its output
        y = torch.relu_(pre) if act == "relu" else act_fn(pre)
        if pool > 1:
            # p x p max-pool in two reductions, each over whole contiguous slabs (a joint
            # reduction over both strided window axes is several times slower on CPU)
            mo = size // pool
            y = y.view(r, size, nb, mo, pool).amax(dim=-1).view(r, mo, pool, nb, mo).amax(dim=2)
        mo = size // pool
        if grp.base:
            t1 = (grp.base_an @ y.reshape(mo, nb * mo)).view(k_out * nb, mo)
            z_hat = (t1 @ grp.base_an_t).view(k_out, nb, k_out).transpose(0, 1)
        else:
            yf = y.reshape(r, mo, nb * mo)
            ring_left = torch.bmm(grp.ring_rows, yf).view(r, 2 * nb, mo)
            rows.append(torch.bmm(ring_left, grp.upto).view(r, 2, nb, k_out))
            ring_right = torch.bmm(y.reshape(r, mo * nb, mo), grp.ring_rows_t)
            cols.append(torch.bmm(grp.below, ring_right.view(r, mo, nb * 2)).view(r, k_out, nb, 2))
    if rows:
        lead = 2 * plan.rings_base + 1
        top = torch.cat(rows).permute(2, 0, 1, 3).reshape(nb, k_out - lead, k_out)
        left = torch.cat(cols).permute(2, 1, 0, 3).reshape(nb, k_out, k_out - lead)
        z_hat = z_hat + F.pad(top, (0, 0, lead, 0)) + F.pad(left, (lead, 0))
    z = _sep(z_hat, plan.out_synth_t, plan.out_synth_t)
    m = n // pool
    return z.reshape(bsz, ch, m, m)


class RingNonlinearity(nn.Module):
    """Scale-equivariant pointwise nonlinearity (``pool=1``) or nonlinearity + max-pool (``pool=p``).

    Equivariant to: discrete anti-aliased scaling ``D_s`` (``fourier_resize``) for
    every input size ``s`` in ``[min_size, max_size]`` -- ``f(D_s x) = D_{s//p} f(x)``
    exactly -- and to cyclic translations by multiples of ``p`` pixels (``p = 1``:
    all integer translations). Acts per channel. Input ``(B, C, n, n)``, output
    ``(B, C, n // p, n // p)``; both band-limited.

    ``norm=True`` adds an instance norm with a learnt affine per evaluation grid
    (``gamma``/``beta`` of shape ``(grids, C)``); ``impl`` selects the batched
    (``"fast"``) or the per-ring reference (``"reference"``) computation of the
    same function.
    """

    def __init__(self, channels: int, min_size: int, max_size: int, pool: int = 1,
                 act: str = "relu", norm: bool = True, eps: float = 1e-5, impl: str = "fast",
                 waste: float = 1.35):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
        if impl not in ("fast", "reference"):
            raise ValueError(f"impl must be 'fast' or 'reference', got {impl!r}")
        if min_size // pool < 1 or max_size < min_size:
            raise ValueError(f"bad size range [{min_size}, {max_size}] for pool {pool}")
        self.channels, self.min_size, self.max_size = channels, min_size, max_size
        self.pool, self.act, self.eps, self.impl, self.waste = pool, act, eps, impl, waste
        grids = len(ring_schedule(max_size, min_size, pool))
        if norm:
            self.gamma = nn.Parameter(torch.ones(grids, channels))
            self.beta = nn.Parameter(torch.zeros(grids, channels))
        else:
            self.register_parameter("gamma", None)
            self.register_parameter("beta", None)
        self._plans: dict[tuple, _Plan] = {}

    def extra_repr(self) -> str:
        return (f"{self.channels}, sizes=[{self.min_size}, {self.max_size}], pool={self.pool}, "
                f"act={self.act}, norm={self.gamma is not None}, impl={self.impl}")

    def output_size(self, n: int) -> int:
        return n // self.pool

    def plan(self, n: int, dtype: torch.dtype, device: torch.device) -> _Plan:
        key = (n, dtype, str(device))
        if key not in self._plans:
            self._plans[key] = build_plan(n, self.min_size, self.pool, self.waste, dtype, device)
        return self._plans[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        if not self.min_size <= n <= self.max_size:
            raise ValueError(f"{type(self).__name__} accepts sizes {self.min_size}..{self.max_size}, "
                             f"got {n}")
        if self.impl == "reference":
            from methods.fourier.reference import ring_nonlinearity_reference
            return ring_nonlinearity_reference(x, self.min_size, self.pool, self.gamma, self.beta,
                                               ACTIVATIONS[self.act], self.eps)
        return ring_nonlinearity_fast(x, self.plan(n, x.dtype, x.device), self.pool, self.gamma,
                                      self.beta, self.act, self.eps)
