"""Assembly of the Fourier network: blocks of spectral convolutions and ring nonlinearities, and the head.

Two architectures (Rahman & Yeh 2023):

* plain (MNIST): ``[SpectralConv2d -> RingNonlinearity] x len(channels)``;
* residual (STL-10): a 1x1 lift with a ring nonlinearity, then blocks
  ``x -> NL_2(L_2(NL_1(L_1 x)) + P x)`` whose second nonlinearity may max-pool.

The per-size head: for every feature size ``i`` from the smallest the network
can produce up to the current one, the last feature map is cropped to size ``i``
(``D_i``, i.e. its rings ``<= J(i)``), pooled globally and passed through one
shared MLP, giving the per-size logits ``(B, S, K)``. The prediction is the entry
at the input's own size. Because ``features(D_s x) == D features(x)`` and the
pooling of size ``i`` only reads rings ``<= J(i)``, the size-``i`` logits of
``D_s x`` equal those of ``x`` for every ``i`` the smaller input reaches.

Memory: every layer takes its large outputs and gradients from one
:class:`~methods.fourier.workspace.Workspace` that the network owns (its
``workspace`` attribute; ``empty_cache()`` unmaps what it holds idle).

Global pooling (``head_pool``): ``"rms"`` -- per channel the mean (the constant
coefficient) and the root-mean-square of the AC part over the ``i x i`` grid,
computed for all sizes at once from cumulative ring energies (Parseval);
``"max"`` -- the maximum over the ``i x i`` grid of ``D_i f`` (plus the mean),
which costs one resize per size. Departure from the paper: the authors pool
2x2 windows of each size re-sampled on a fixed grid; we pool globally, as the
method card asks, and so accept every size in the range.

Against the authors' code (tests/test_fourier_reference.py): their head reads
``C x 2 x 2`` max-pooled values (400 in the MNIST model; ours ``2C`` = 200, 51,600
parameters fewer) and, as published, builds its per-size features with ``get_stack``,
which applies ``irfft2`` to the real feature map: the size-``i`` features of ``D_s f`` then
differ from those of ``f`` (22 % at ``s = 21``, measured on their code), so their head is not
size-invariant, ours is. Their dropout (0.75, the rate their train scripts use; the
``mnist`` and ``stl10`` configs take it) sits between the first Linear and its LayerNorm;
ours after the ReLU, as the other methods' MNIST heads (``methods.common.mnist_head``).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from scaleqbench.datasets.scaling import resize_matrix
from scaleqbench.methods.fourier.basis import band_mean_square, map_spectrum, ring_count, spectrum_map
from scaleqbench.methods.fourier.chunking import chunk_budget
from scaleqbench.methods.fourier.moments import SpectrumMoments
from scaleqbench.methods.fourier.nonlinearity import RingNonlinearity
from scaleqbench.methods.fourier.spectral import SpectralConv2d
from scaleqbench.methods.fourier.workspace import Workspace

__all__ = ["FourierNet", "FourierBlock", "ResidualFourierBlock"]


def _full_precision(method):
    """Run a network entry point with autocast off (in float32 at least): its layers are
    autograd functions that write into buffers of their input's dtype, and its exact
    equivariance is a statement about full-precision arithmetic. A training step under
    ``--precision bf16`` thus computes this network in float32."""

    @functools.wraps(method)
    def wrapper(self, x: torch.Tensor, *args, **kwargs):
        kind = x.device.type
        if kind not in ("cpu", "cuda") or not torch.is_autocast_enabled(kind):
            return method(self, x, *args, **kwargs)
        with torch.autocast(kind, enabled=False):
            low = x.is_floating_point() and x.dtype in (torch.float16, torch.bfloat16)
            return method(self, x.float() if low else x, *args, **kwargs)

    return wrapper


class _SpectralBlock(nn.Module):
    """A block that works on real spectra (``spectral_forward``); ``forward`` wraps it in
    the analysis of its input map and the synthesis of its output map."""

    def output_size(self, n: int) -> int:
        """Size of the output map for an input map of size ``n``."""
        raise NotImplementedError

    def spectral_forward(self, spec: torch.Tensor, n: int) -> torch.Tensor:
        """The block on the real spectrum ``(K, K, B, C)`` of a size-``n`` map."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        return spectrum_map(self.spectral_forward(map_spectrum(x), n), self.output_size(n))


class FourierBlock(_SpectralBlock):
    """Spectral convolution (with 1x1 mixing) then a ring nonlinearity (optionally pooling).

    Equivariant to ``D_s`` for every input size in ``[min_size, max_size]``:
    ``block(D_s x) = D_{s // pool} block(x)``.
    """

    def __init__(self, c_in: int, c_out: int, grid: int, kernel: int, min_size: int,
                 max_size: int, pool: int, act: str, norm: bool, impl: str,
                 kernel_form: str = "real"):
        super().__init__()
        self.conv = SpectralConv2d(c_in, c_out, grid, kernel, pointwise=True, bias=not norm,
                                   kernel_form=kernel_form, impl=impl)
        self.nl = RingNonlinearity(c_out, min_size, max_size, pool=pool, act=act, norm=norm,
                                   impl=impl)

    def output_size(self, n: int) -> int:
        return self.nl.output_size(n)

    def spectral_forward(self, spec: torch.Tensor, n: int) -> torch.Tensor:
        """The block on the real spectrum ``(K, K, B, C)`` of a size-``n`` map."""
        return self.nl.spectral_forward(self.conv.spectral_forward(spec), n)


class ResidualFourierBlock(_SpectralBlock):
    """``x -> NL_2(L_2(NL_1(L_1 x)) + P x)``, ``P`` a 1x1 mixing; ``NL_2`` may pool.

    Equivariant to ``D_s`` for every input size in ``[min_size, max_size]``:
    ``block(D_s x) = D_{s // pool} block(x)`` (a sum of equivariant maps).
    """

    def __init__(self, c_in: int, c_out: int, grid: int, kernel: int, min_size: int,
                 max_size: int, pool: int, act: str, norm: bool, impl: str,
                 kernel_form: str = "real"):
        super().__init__()
        self.conv1 = SpectralConv2d(c_in, c_out, grid, kernel, pointwise=False, bias=not norm,
                                    kernel_form=kernel_form, impl=impl)
        self.nl1 = RingNonlinearity(c_out, min_size, max_size, act=act, norm=norm, impl=impl)
        self.conv2 = SpectralConv2d(c_out, c_out, grid, kernel, pointwise=False, bias=False,
                                    kernel_form=kernel_form, impl=impl)
        # the skip path: 1x1 mixing restricted to the input's band (keeps even sizes exact)
        self.skip = SpectralConv2d(c_in, c_out, grid, 1, spectral=False, bias=not norm)
        self.nl2 = RingNonlinearity(c_out, min_size, max_size, pool=pool, act=act, norm=norm,
                                    impl=impl)

    def output_size(self, n: int) -> int:
        return self.nl2.output_size(n)

    def spectral_forward(self, spec: torch.Tensor, n: int) -> torch.Tensor:
        """The block on the real spectrum ``(K, K, B, C)`` of a size-``n`` map."""
        h = self.conv2.spectral_forward(self.nl1.spectral_forward(self.conv1.spectral_forward(spec), n))
        return self.nl2.spectral_forward(h + self.skip.spectral_forward(spec), n)


class FourierNet(nn.Module):
    """Truly scale-equivariant Fourier network (Rahman & Yeh, NeurIPS 2023).

    ``forward(x)`` takes ``(B, C, n, n)`` with ``min_size <= n <= max_size`` and
    returns the logits of the input's own size; ``per_size_logits(x)`` returns
    all of them, ``(B, S, K)``, entry ``t`` belonging to final feature size
    ``final_min + t`` (see :meth:`size_index`); ``features(x)`` returns the map
    after every block. ``kernel_form``: the spectral kernels' parameterisation
    (:data:`~methods.fourier.spectral.KERNEL_FORMS`; default ``"real"``, the paper's
    localized kernel).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 channels: tuple[int, ...] = (32, 64, 100, 100),
                 grids: int | tuple[int, ...] = 28, kernels: int | tuple[int, ...] = 5,
                 pools: int | tuple[int, ...] = 1, residual: bool = False, lift: int | None = None,
                 min_size: int = 8, max_size: int = 28, act: str = "relu", norm: bool = True,
                 hidden: int = 256, dropout: float = 0.0, head_pool: str = "rms",
                 impl: str = "fast", consistency_weight: float = 1.0, kernel_form: str = "real"):
        super().__init__()
        nb = len(channels)
        grids, kernels, pools = (tuple(v) if isinstance(v, (tuple, list)) else (v,) * nb
                                 for v in (grids, kernels, pools))
        if not len(grids) == len(kernels) == len(pools) == nb:
            raise ValueError("grids, kernels and pools need one entry per block")
        if head_pool not in ("rms", "max"):
            raise ValueError(f"head_pool must be 'rms' or 'max', got {head_pool!r}")
        if min_size < 2 or max_size < min_size:
            raise ValueError(f"bad size range [{min_size}, {max_size}]")
        self.min_size, self.max_size = min_size, max_size
        self.pools, self.head_pool = pools, head_pool
        self.consistency_weight = consistency_weight
        self.impl = impl
        lo, hi, c_prev = min_size, max_size, in_channels
        if lift is not None:
            self.lift = SpectralConv2d(in_channels, lift, grids[0], 1, spectral=False,
                                       bias=not norm)
            self.lift_nl = RingNonlinearity(lift, lo, hi, act=act, norm=norm, impl=impl)
            c_prev = lift
        else:
            self.lift, self.lift_nl = None, None
        block = ResidualFourierBlock if residual else FourierBlock
        blocks = []
        for c, g, k, p in zip(channels, grids, kernels, pools):
            blocks.append(block(c_prev, c, g, k, lo, hi, p, act, norm, impl, kernel_form))
            lo, hi, c_prev = lo // p, hi // p, c
        self.blocks = nn.ModuleList(blocks)
        self.final_min = lo
        feats = 2 * c_prev
        self.mlp = nn.Sequential(
            nn.LayerNorm(feats), nn.Linear(feats, hidden), nn.LayerNorm(hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes))
        # one pool of warm buffers for every layer's large spectra and gradients (see
        # methods.fourier.workspace): a training step then reuses the previous step's memory
        self.workspace = Workspace()
        for m in self.modules():
            if isinstance(m, (SpectralConv2d, RingNonlinearity)):
                m.workspace = self.workspace

    def implementation(self, device: torch.device | str = "cpu",
                       dtype: torch.dtype | None = None) -> str:
        """How the ring nonlinearities and the spectral mixing compute on ``device`` in
        ``dtype`` (default: the parameters'), the same function every way; ``bench perf``
        and the run records name it, since it sets the speed."""
        probe = torch.empty(0, dtype=dtype or next(self.parameters()).dtype, device=device)
        rings = [m for m in self.modules() if isinstance(m, RingNonlinearity)]
        mixes = [m for m in self.modules()
                 if isinstance(m, SpectralConv2d) and m.spectral_weight is not None]
        return (f"ring nonlinearity: {', '.join(sorted({m.implementation(probe) for m in rings}))}; "
                f"spectral mixing: {', '.join(sorted({m.implementation(probe) for m in mixes}))}")

    def empty_cache(self) -> None:
        """Unmap the idle buffers the model keeps for its next step (``bench perf`` calls it
        before it measures a step's memory)."""
        self.workspace.release()

    # sizes ---------------------------------------------------------------------------------
    def final_size(self, n: int) -> int:
        """Size of the last feature map for an input of size ``n``."""
        for p in self.pools:
            n //= p
        return n

    def size_index(self, n: int) -> int:
        """Which entry of ``per_size_logits`` an input of size ``n`` predicts with."""
        return self.final_size(n) - self.final_min

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"FourierNet needs square (B, C, n, n) input, got {tuple(x.shape)}")
        if not self.min_size <= x.shape[-1] <= self.max_size:
            raise ValueError(f"FourierNet accepts sizes {self.min_size}..{self.max_size}, "
                             f"got {x.shape[-1]}")

    # trunk -------------------------------------------------------------------------------
    def _spectra(self, x: torch.Tensor):
        """``(name, real spectrum (K, K, B, C), map size)`` after the lift and every block.

        The trunk works on real spectra throughout (see :mod:`methods.fourier.basis`):
        the image is analysed once, and no layer goes back to the pixel grid.
        """
        self._check(x)
        n, spec = x.shape[-1], map_spectrum(x)
        if self.lift is not None:
            spec = self.lift_nl.spectral_forward(self.lift.spectral_forward(spec), n)
            yield "lift", spec, n
        for i, block in enumerate(self.blocks):
            spec = block.spectral_forward(spec, n)
            n //= self.pools[i]
            yield f"block{i + 1}", spec, n

    @_full_precision
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: spectrum_map(spec, n) for name, spec, n in self._spectra(x)}

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        for _, spec, n in self._spectra(x):
            pass
        return spec, n

    # head --------------------------------------------------------------------------------
    def pooled_per_size(self, f: torch.Tensor, sizes: range | None = None) -> torch.Tensor:
        """``(B, S, 2C)``: [mean, global pool] of ``D_i f`` for ``i`` in ``sizes``.

        ``sizes`` defaults to every size ``final_min .. f.size``; each entry reads
        only the rings ``<= J(i)`` of ``f``.
        """
        return self._pooled(map_spectrum(f), f.shape[-1], sizes)

    def _pooled(self, coef: torch.Tensor, m: int, sizes: range | None = None) -> torch.Tensor:
        """:meth:`pooled_per_size` of the map of size ``m`` with real spectrum ``coef`` (K, K, B, C)."""
        sizes = range(self.final_min, m + 1) if sizes is None else sizes
        k, _, bsz, ch = coef.shape
        if self.head_pool == "rms":
            # mean square of D_i f over its grid (Parseval): sum_ab coef[a, b]^2 q_i[a] q_i[b]
            q = band_mean_square([ring_count(i) for i in sizes], k, coef.dtype, coef.device)
            mean, ms = SpectrumMoments.apply(coef.reshape(k, k, bsz * ch), q, self.workspace,
                                             chunk_budget(coef.device))
            mean, ms = mean.view(bsz, ch), ms.view(len(sizes), bsz, ch)
            ac = ms - mean.square()  # AC part only: the mean is a feature of its own
            pooled = torch.sqrt(ac.clamp_min(0.0) + 1e-6).permute(1, 2, 0)  # (B, C, S)
        else:
            mean = coef[0, 0]  # (B, C)
            f = spectrum_map(coef, m)
            mats = [resize_matrix(m, i, f.dtype, f.device) for i in sizes]
            pooled = torch.stack([(a @ f @ a.T).amax(dim=(-2, -1)) for a in mats], dim=-1)
        feats = torch.cat([mean[..., None].expand_as(pooled), pooled], dim=1)  # (B, 2C, S)
        return feats.transpose(1, 2)

    @_full_precision
    def per_size_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for every final feature size ``final_min .. final_size(n)``: ``(B, S, K)``."""
        return self.mlp(self._pooled(*self._trunk(x)))

    @_full_precision
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec, m = self._trunk(x)
        return self.mlp(self._pooled(spec, m, range(m, m + 1))[:, 0])
