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

Against the authors' ``scaleEqNonlin`` (tests/test_fourier_reference.py): every ring ``j``
they take from the odd grid ``2j + 1`` equals ours to float32 precision (same grid, same
instance norm with its own affine, same activation). Departures: (1) their base grid (6 in
their MNIST model; ours ``min_size``, 8 there) is cut from the input with half of its
Nyquist ring (their ``resample`` keeps row ``-3`` and column ``3``), so their rings 0..2
also read half of the input's ring 3 -- ours reads the band-limited ``D_b x`` (equal once
the input has no ring 3); (2) at an even size ``n`` their last ring, ``n/2``, comes from the
``n`` grid: it is not equivariant (relative error 0.15 on their layer at sizes 10..14,
1e-15 without that ring; their own test skips it), so ours has no Nyquist ring, and the
norms of their even grids, which serve only that ring, do not exist here: 11 per layer in
the MNIST model (base 8, grids 9, 11, .., 27) against their 23 (resolutions 6..28).

Fast implementation. The instance-norm moments of every grid come from the
spectrum (Parseval: the real basis is orthogonal on every grid that resolves it),
never from the grids. The grids themselves are synthesised from the input's real
spectrum by separable matrix products (``S_g X S_g^T``), grouped into
stacks (one per grid size by default; the matrices of one input size are its plan,
:mod:`methods.fourier.ring_plan`), and only ring ``j`` of each grid is analysed
(two thin matrix products) straight into the output spectrum, which is
synthesised once. Moments and grids are one autograd function that works through
the maps in cache-sized chunks and keeps only the raw grids for backward
(:mod:`methods.fourier.grid_rings`); its output and input gradient come from the
layer's :attr:`~RingNonlinearity.workspace` (:mod:`methods.fourier.workspace`).
Every step is a GEMM or an elementwise op with the grid index as the leading
batch axis, on CPU and CUDA alike. The plainly written per-ring version lives in
:mod:`methods.fourier.reference`.

On the CPU (float32/64, ReLU) the layer runs by default on a compiled kernel
(:mod:`methods.fourier.native`, :mod:`methods.fourier.grid_rings_native`): the same
evaluations, one tile of maps at a time in cache, each grid's synthesis by its even and
odd halves (half the multiply-adds of ``S X S^T``), the norm's moments taken in the
kernel, and ReLU's mask kept for backward instead of the grids. ``impl`` chooses
(:data:`IMPLS`); all of them are tested to compute the same function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.fourier.basis import map_spectrum, ring_schedule, spectrum_map
from scaleqbench.methods.fourier.chunking import CHUNK_ELEMENTS, chunk_budget
from scaleqbench.methods.fourier import native
from scaleqbench.methods.fourier.grid_rings import GridRings
from scaleqbench.methods.fourier.grid_rings_native import NativeGridRings
from scaleqbench.methods.fourier.native import NativePlan
from scaleqbench.methods.fourier.reference import ring_nonlinearity_reference
from scaleqbench.methods.fourier.ring_plan import RingPlan, build_plan
from scaleqbench.methods.fourier.workspace import Workspace

__all__ = ["RingNonlinearity", "ACTIVATIONS", "IMPLS", "runs_kernel"]

#: how a Fourier layer is computed (the same function each way): ``fast`` -- the CPU kernel
#: (:mod:`methods.fourier.native`; the spectral mixing's: :mod:`methods.fourier.mix_native`)
#: where it runs (CPU, float32/64, ReLU for this layer, built), tensor operations elsewhere;
#: ``tensor`` -- tensor operations always; ``native`` -- the kernel, an error where it cannot
#: run; ``reference`` -- the plainly written per-ring version (the mixing: tensor operations)
IMPLS = ("fast", "tensor", "native", "reference")


def runs_kernel(impl: str, usable: bool, needs: Callable[[], str]) -> bool:
    """The choice :data:`IMPLS` describe, for a layer whose CPU kernel can run here or not
    (``usable``): never for ``tensor`` and ``reference``; for ``fast`` where usable; for
    ``native`` where usable, else one error saying what it ``needs``."""
    if impl in ("tensor", "reference"):
        return False
    if usable:
        return True
    if impl == "native":
        raise ValueError(f"impl='native' needs {needs()}; use impl='fast' to take the tensor "
                         "path where it cannot run")
    return False

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.1),
}


def ring_nonlinearity_fast(spec_in: torch.Tensor, plan: RingPlan, pool: int,
                           gamma: torch.Tensor | None, beta: torch.Tensor | None, act: str,
                           eps: float, chunk_elements: int = CHUNK_ELEMENTS,
                           ws: Workspace | None = None,
                           nplan: NativePlan | None = None) -> torch.Tensor:
    """Batched evaluation of the layer defined in the module docstring on real spectra:
    ``(K, K, B, C) -> (K', K', B, C)`` (``K' = 2 J(n // pool) + 1``); with ``nplan``, by the
    CPU kernel (:mod:`methods.fourier.native`)."""
    if nplan is not None:  # the affine of evaluation r, channel c: row r of gamma, column c
        if gamma is not None:
            gamma, beta = gamma[plan.grid_index], beta[plan.grid_index]
        return NativeGridRings.apply(spec_in, gamma, beta, nplan, eps, ws)
    bsz = spec_in.shape[2]
    if gamma is not None:  # the affine of grid r, map i = (b, c): row r of gamma, column c
        gamma, beta = gamma[plan.grid_index].repeat(1, bsz), beta[plan.grid_index].repeat(1, bsz)
    return GridRings.apply(spec_in, gamma, beta, plan, pool, ACTIVATIONS[act], act == "relu",
                           chunk_elements, eps, ws)


class RingNonlinearity(nn.Module):
    """Scale-equivariant pointwise nonlinearity (``pool=1``) or nonlinearity + max-pool (``pool=p``).

    Equivariant to: discrete anti-aliased scaling ``D_s`` (``fourier_resize``) for
    every input size ``s`` in ``[min_size, max_size]`` -- ``f(D_s x) = D_{s//p} f(x)``
    exactly -- and to cyclic translations by multiples of ``p`` pixels (``p = 1``:
    all integer translations). Acts per channel. Input ``(B, C, n, n)``, output
    ``(B, C, n // p, n // p)``; both band-limited.

    ``waste`` lets grids of similar size share one zero-padded stack while the padding
    stays below that factor (fewer, larger products); the default 1.0 gives every grid
    its own stack, which measured ~8 % faster on CPU than 1.35 (paper MNIST model).

    ``norm=True`` adds an instance norm with a learnt affine per evaluation grid
    (``gamma``/``beta`` of shape ``(grids, C)``); ``impl`` selects how the same function
    is computed (:data:`IMPLS`).
    """

    def __init__(self, channels: int, min_size: int, max_size: int, pool: int = 1,
                 act: str = "relu", norm: bool = True, eps: float = 1e-5, impl: str = "fast",
                 waste: float = 1.0):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
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
        self._plans: dict[tuple, RingPlan] = {}
        #: grid elements per chunk of maps in the fast path; None: the device's own budget
        #: (:func:`~methods.fourier.chunking.chunk_budget`)
        self.chunk_elements: int | None = None
        #: where the output and the input gradient come from (FourierNet shares one pool)
        self.workspace: Workspace | None = Workspace()

    def extra_repr(self) -> str:
        return (f"{self.channels}, sizes=[{self.min_size}, {self.max_size}], pool={self.pool}, "
                f"act={self.act}, norm={self.gamma is not None}, impl={self.impl}")

    def output_size(self, n: int) -> int:
        return n // self.pool

    def plan(self, n: int, dtype: torch.dtype, device: torch.device) -> RingPlan:
        key = (n, dtype, str(device))
        if key not in self._plans:
            self._plans[key] = build_plan(n, self.min_size, self.pool, self.waste, dtype, device)
        return self._plans[key]

    def _check(self, n: int) -> None:
        if not self.min_size <= n <= self.max_size:
            raise ValueError(f"{type(self).__name__} accepts sizes {self.min_size}..{self.max_size}, "
                             f"got {n}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, n, n) -> (B, C, n // p, n // p)``."""
        n = x.shape[-1]
        self._check(n)
        if self.impl == "reference":
            return self._reference(x)
        return spectrum_map(self.spectral_forward(map_spectrum(x), n), n // self.pool)

    def spectral_forward(self, spec: torch.Tensor, n: int) -> torch.Tensor:
        """The layer on real spectra (:func:`~methods.fourier.basis.map_spectrum`) of maps of
        size ``n``: ``(K, K, B, C) -> (K', K', B, C)``, ``K' = 2 J(n // p) + 1``."""
        self._check(n)
        if self.impl == "reference":
            return map_spectrum(self._reference(spectrum_map(spec, n)))
        budget = self.chunk_elements or chunk_budget(spec.device)
        return ring_nonlinearity_fast(spec, self.plan(n, spec.dtype, spec.device), self.pool,
                                      self.gamma, self.beta, self.act, self.eps, budget,
                                      self.workspace, self._native_plan(spec, n))

    def implementation(self, spec: torch.Tensor) -> str:
        """Which computation :meth:`spectral_forward` takes for a spectrum like ``spec``."""
        if self.impl == "reference":
            return "per-ring reference"
        return f"CPU kernel ({native.status()})" if self._runs_kernel(spec) else "tensor operations"

    def _runs_kernel(self, spec: torch.Tensor) -> bool:
        """Whether a spectrum like ``spec`` goes to the CPU kernel (see :data:`IMPLS`); with
        ``impl="native"``, one error where it cannot."""
        param_dtype = self.gamma.dtype if self.gamma is not None else None
        return runs_kernel(self.impl, native.usable(spec, self.act == "relu", param_dtype),
                           lambda: f"the CPU kernel ({native.status()}), a CPU float32 or "
                                   f"float64 input (got {spec.device.type} {spec.dtype}) with "
                                   f"parameters of its dtype (got {param_dtype}) and "
                                   f"act='relu' (got {self.act!r})")

    def _native_plan(self, spec: torch.Tensor, n: int) -> NativePlan | None:
        """The CPU kernel's plan when this layer runs it, else None."""
        if not self._runs_kernel(spec):
            return None
        return native.native_plan(n, self.min_size, self.pool, spec.dtype)

    def _reference(self, x: torch.Tensor) -> torch.Tensor:
        return ring_nonlinearity_reference(x, self.min_size, self.pool, self.gamma, self.beta,
                                           ACTIVATIONS[self.act], self.eps)
