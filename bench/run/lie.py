"""The Lie derivative of the scale action on a network's maps (Gruver et al., ICLR 2023).

Gruver, Finzi, Goldblum & Wilson, "The Lie Derivative for Measuring Learned
Equivariance" (ICLR 2023; code: ngruver/lie-deriv) measure how far a network is
from equivariance to a continuous group *at the identity*: for the one-parameter
scale group ``S_t`` (zoom by ``e^t``) and a map ``f``,

    L f (x) = d/dt [ S_t^{-1} f(S_t x) ] at t = 0 = J_f(x) (A x) - A f(x),

``A`` the generator of the zoom on each map's own grid. It is zero for every ``x``
iff ``f`` commutes with small zooms, and unlike a finite rescale it needs no
choice of target sizes or interpolation error budget.

The differentiable rescale here is :func:`datasets.scaling.fourier_zoom` (the
zoom of the band-limited function that ``fourier_resize`` interpolates, about the
centre of the period) rather than the bilinear affine-grid sampling of the
authors' code: its derivative at ``t = 0`` is the exact generator of
``fourier_resize``'s notion of scale, so ``L`` of ``fourier_resize`` itself
vanishes on band-limited content, where a bilinear grid's one-sided differences
would not. Both ``A x`` and ``J_f(x) (A x)`` come from forward-mode autograd
(:func:`torch.func.jvp`): the first through the zoom, the second through the
network. A model with an operation that has no forward-mode rule (the Fourier
network's custom autograd Functions) falls back to a central difference of the
zoom (``FD_STEP``); the double-backward trick would silently give zeros there.

Normalisation (what :func:`bench.metrics.equivariance_errors` reports):

* feature maps: per image ``||L f(x)||^2 / (||f(x)||^2 + EPS)``, norms over channels
  and space, averaged over images. The paper's layer-wise numbers attribute the
  output's Lie derivative to each layer through random probes of the softmax
  output; they answer "which layer breaks the output's equivariance", not "how
  equivariant is this map". We report the map's own derivative with the
  normalisation of every other operator here, which makes it the small-zoom limit
  of the ``ideal``-style error: ``err(e^t) ~ t^2 * ||L f||^2 / ||f||^2``.
* logits: the paper's end-to-end normalisation, the Lie derivative of the softmax
  probabilities (an invariant output: no zoom on the output side), its absolute
  value averaged over classes, per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch.func import jvp

from scaleqbench.datasets.scaling import fourier_zoom

__all__ = ["FD_STEP", "lie_derivatives", "scale_generator"]

FeatureFn = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


def scale_generator(x: torch.Tensor) -> torch.Tensor:
    """``A x = d/dt fourier_zoom(x, e^t)`` at ``t = 0``, by forward-mode autograd through the zoom."""
    t = torch.zeros((), dtype=x.dtype, device=x.device)
    _, tangent = jvp(lambda u: fourier_zoom(x, torch.exp(u)), (t,), (torch.ones_like(t),))
    return tangent


#: the step of the finite-difference fallback, in log-zoom (central: error O(h^2), and
#: float32 rounding ~1e-7 / h stays far below the derivatives measured)
FD_STEP = 1e-3


def _jvp_central_difference(fn: Callable[[torch.Tensor], dict], x: torch.Tensor
                            ) -> tuple[dict, dict]:
    """``(fn(x), d/dt fn(fourier_zoom(x, e^t)) at 0)`` by a central difference in ``t``.

    For a model with an operation that has no forward-mode rule (a custom
    ``autograd.Function`` without ``jvp``). The double-backward trick is no remedy
    there: such a Function's backward is usually not itself differentiable, and the
    second pass then silently returns zeros for whatever depends on it.
    """
    with torch.no_grad():
        primal = fn(x)
        hi = fn(fourier_zoom(x, math.exp(FD_STEP)))
        lo = fn(fourier_zoom(x, math.exp(-FD_STEP)))
    return primal, {k: (hi[k] - lo[k]) / (2 * FD_STEP) for k in primal}


def lie_derivatives(features: FeatureFn, x: torch.Tensor,
                    invariant: Callable[[torch.Tensor], torch.Tensor] | None = None
                    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{name: (L f(x), f(x))}`` for every spatial map of ``features`` at images ``x``.

    With ``invariant`` (e.g. softmax probabilities), its derivative along the zoom is
    added under ``"logits"``: ``(d/dt invariant(S_t x), invariant(x))``, no zoom on
    the output side (an invariant output should not change at all).
    """
    ax = scale_generator(x)

    def fn(z: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {k: v for k, v in features(z).items() if v.dim() == 4}
        if invariant is not None:
            out["logits"] = invariant(z)
        return out

    try:
        primal, tangent = jvp(fn, (x,), (ax,))
    except (RuntimeError, NotImplementedError):  # an op without a forward-mode rule
        primal, tangent = _jvp_central_difference(fn, x)
    out = {}
    for name, fx in primal.items():
        deriv = tangent[name]
        if name != "logits" or invariant is None:
            deriv = deriv - scale_generator(fx)
        out[name] = (deriv.detach(), fx.detach())
    return out
