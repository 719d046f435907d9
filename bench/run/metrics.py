"""Metric definitions: accuracy, scale consistency, equivariance error.

Equivariance error of a feature map ``f`` at a target size ``s < N`` (``N`` the
full input size), with ``D_m = fourier_resize(., m)``::

    m = size of f(D_s x)
    a = D_m f(x),  b = D_m f(D_s x)
    err = mean over samples of ||a - b||^2 / (||a||^2 + 1e-12),
          the norms taken over channels and space together

The ratio is per image, not per (image, channel), on purpose: a ReLU
channel that is dead (or nearly so) on an image has ||a||^2 ~ 0, and its ratio
(anything / 1e-12) swamps the mean, so freshly initialised CNNs read as 1e6.
Pooling over channels is the definition SESN (Sosnovik et al. 2020) and DSS use:
the relative error of the whole feature map of one image.

Reported per layer and per size; the headline ``eq_err`` is the mean over the
size grid of the last spatial layer. The invariant counterpart compares logits:
``||z(x) - z(D_s x)||^2 / (||z(x)||^2 + 1e-12)`` per sample.

The operator is a parameter (:data:`OPERATORS`); each is one way the field
measures scale equivariance, with the same per-image error:

* ``ideal`` -- ``D`` is ``fourier_resize``, the ideal low-pass, on the input and on
  the maps: the discrete scaling of Rahman & Yeh (NeurIPS 2023), under which their
  Fourier network is exactly equivariant. The headline ``eq_err``.
* ``scale-shift`` -- for maps that carry a discrete scale axis
  (:class:`methods.scale_axis.ScaleAxis`, declared by the model): a down-scaling by
  ``N/s = sigma_j/sigma_i`` moves slice ``j`` of ``f(x)`` to slice ``i`` of ``f(D_s x)``,
  so those are compared (both band-limited by ``fourier_resize`` as in ``ideal``),
  as in DISCO's equivariance loss (Sosnovik, Moskalev & Smeulders, BMVC 2021) and
  SESN's definition of a scale-equivariant map (Sosnovik et al., ICLR 2020).
  Reported only at sizes whose ratio lies on the axis's grid
  (:meth:`ScaleAxis.pairs`); slices whose partner falls off the axis are left out
  (:func:`scale_shift_left_out` counts them). Maps without an axis, and models
  that declare none, get the plain ``ideal`` comparison at every size.
* ``bicubic`` -- the ``ideal`` comparison with bicubic interpolation
  (``F.interpolate``, ``antialias=True``) instead of the ideal low-pass, for the
  input and for the maps: the interpolating rescale of the SESN / DISCO code
  (DISCO's basis fit rescales with ``F.interpolate(mode="bicubic")``; we add the
  anti-aliasing prefilter because our ratios reach 3.5x, where a plain bicubic
  down-sampling aliases).
* ``lie`` -- the Lie derivative of the scale action at the identity (Gruver et
  al., ICLR 2023), per layer, at each size of the grid: see :mod:`bench.run.lie` for
  the generator and the normalisation.
* ``rahman-yeh`` -- the error the Fourier paper's tables print, computed as the
  authors' code computes it (:mod:`bench.run.rahman_yeh`): their input down-sampling,
  the maps cut below the Nyquist, a per-channel ratio with eps 1e-6 averaged over
  channels, and as summary their sum over sizes divided by the number of sizes plus
  one at their layer (the first block's map on MNIST, the last block's on STL-10).
  Not the per-image ratio above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from scaleqbench.bench.run.lie import lie_derivatives
from scaleqbench.bench.run.rahman_yeh import rahman_yeh_errors

# the summaries of per-layer errors live in their own module; importable from here too
from scaleqbench.bench.run.summaries import (
    headline_eq_err,
    scale_shift_headline,
    scale_shift_left_out,
    summary_layer,
)
from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.methods.scale_axis import ScaleAxis

__all__ = ["EPS", "OPERATORS", "accuracy", "bicubic_resize", "equivariance_errors",
           "grouped_accuracy", "headline_eq_err", "operator_errors", "relative_sq_error",
           "scale_consistency", "scale_shift_headline", "scale_shift_left_out",
           "summary_layer"]

#: the equivariance operators, in the order tables show them (see the module docstring)
OPERATORS = ("ideal", "scale-shift", "bicubic", "lie", "rahman-yeh")

EPS = 1e-12

FeatureFn = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    if target.numel() == 0:
        return float("nan")
    return (pred == target).double().mean().item()


def grouped_accuracy(pred: torch.Tensor, target: torch.Tensor, groups: Iterable) -> dict[str, float]:
    """Accuracy per group label (a test size, or a scale bin), keys as strings, sorted."""
    groups = list(groups)
    out: dict[str, list[int]] = {}
    for p, t, g in zip(pred.tolist(), target.tolist(), groups):
        out.setdefault(str(g), []).append(int(p == t))
    key = (lambda k: float(k.split("-")[0])) if all(
        _is_number(k.split("-")[0]) for k in out) else str
    return {k: sum(v) / len(v) for k, v in sorted(out.items(), key=lambda kv: key(kv[0]))}


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def scale_consistency(preds: torch.Tensor) -> float:
    """Fraction of images whose predicted label is the same in every view.

    ``preds`` is ``(V, N)``: the prediction for each of ``V`` scaled views of ``N`` images.
    """
    if preds.dim() != 2 or preds.shape[1] == 0:
        return float("nan")
    return (preds == preds[:1]).all(dim=0).double().mean().item()


def relative_sq_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample ``||a-b||^2 / (||a||^2 + EPS)``, norms over every axis but the first.

    For (B, C, H, W) feature maps the norm runs over channels and space together
    (see the module docstring for why not per channel); for (B, K) logits over K.
    """
    a, b = a.double(), b.double()
    dims = tuple(range(1, a.dim()))
    return ((a - b) ** 2).sum(dims) / ((a ** 2).sum(dims) + EPS)


def bicubic_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(..., n, n) -> (..., size, size)`` by anti-aliased bicubic interpolation (``bicubic``)."""
    if x.shape[-1] == size:
        return x
    lead = x.shape[:-2]
    y = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=(size, size), mode="bicubic",
                      align_corners=False, antialias=True)
    return y.reshape(*lead, size, size)


def _shifted_error(fx: torch.Tensor, fs: torch.Tensor, axis: ScaleAxis,
                   pairs: list[tuple[int, int]]) -> torch.Tensor:
    """Per image error between slice ``j`` of ``D_m f(x)`` and slice ``i`` of ``f(D_s x)``."""
    m = fs.shape[-1]
    a = axis.take(fourier_resize(fx, m), [j for _, j in pairs])
    b = axis.take(fourier_resize(fs, m), [i for i, _ in pairs])
    return relative_sq_error(a, b)


def _lie_errors(features: FeatureFn, logits, x: torch.Tensor, sizes: Iterable[int]
                ) -> dict[str, dict[int, float]]:
    n = x.shape[-1]
    out: dict[str, dict[int, float]] = {}
    probs = None if logits is None else (lambda z: torch.softmax(logits(z), dim=1))
    for s in sizes:
        if s >= n:
            continue
        for name, (deriv, fx) in lie_derivatives(features, fourier_resize(x, s), probs).items():
            if name == "logits":  # the paper's normalisation: mean |d/dt p| over classes
                err = deriv.double().abs().mean(1)
            else:
                dims = tuple(range(1, fx.dim()))
                err = (deriv.double() ** 2).sum(dims) / ((fx.double() ** 2).sum(dims) + EPS)
            out.setdefault(name, {})[s] = err.mean()
    if "logits" in out:  # keep the layers' order, logits last, as the other operators do
        out["logits"] = out.pop("logits")
    return out


def operator_errors(features: FeatureFn, logits: Callable[[torch.Tensor], torch.Tensor] | None,
                    x: torch.Tensor, sizes: Iterable[int], operators: Iterable[str] = ("ideal",),
                    axes: Mapping[str, ScaleAxis] | None = None, tol: float = 0.5
                    ) -> dict[str, dict[str, dict[int, float]]]:
    """Equivariance error per operator, layer and size: ``{operator: {layer: {size: err}}}``.

    ``x``: images at full size (B, C, N, N); ``axes``: the scale axes the model
    declares (``scale-shift``; none: the plain comparison); ``tol``: how far, in
    pixels, a size may sit from a ratio of the scale grid (:meth:`ScaleAxis.pairs`).
    With ``logits`` given, each operator includes the invariance error of the logits
    under ``"logits"``. ``ideal`` and ``scale-shift`` share their forward passes.
    Layers whose maps are not spatial (fewer than 4 dims) are skipped, and so are
    sizes not below ``N``. A model-level entry point with checked arguments is
    :func:`bench.run.equivariance.check_equivariance`.
    """
    operators = list(dict.fromkeys(operators))
    unknown = [op for op in operators if op not in OPERATORS]
    if unknown:
        raise ValueError(f"unknown equivariance operator(s) {', '.join(unknown)}; "
                         f"known: {', '.join(OPERATORS)}")
    sizes = list(sizes)
    out: dict[str, dict[str, dict[int, float]]] = {}
    if "lie" in operators:
        out["lie"] = _lie_errors(features, logits, x, sizes)
    if "rahman-yeh" in operators:
        out["rahman-yeh"] = rahman_yeh_errors(features, logits, x, sizes)
    interp = [op for op in operators if op not in ("lie", "rahman-yeh")]
    if interp:
        out.update(_interpolation_errors(features, logits, x, sizes, interp, dict(axes or {}),
                                         tol))
    return _as_floats({op: out[op] for op in operators})


def _as_floats(nested: dict) -> dict:
    """``{op: {layer: {size: 0-d tensor}}}`` with every value a float, read from the device
    at once (one wait for a GPU instead of one per layer and size)."""
    leaves = [(d, k) for layers in nested.values() for d in layers.values() for k in d]
    if leaves:
        values = torch.stack([torch.as_tensor(d[k]).detach().double().reshape(())
                              for d, k in leaves])
        for (d, k), v in zip(leaves, values.tolist()):
            d[k] = v
    return nested


#: the rescales of the input and the operators each serves (one forward pass for all of them)
_RESCALES = {"fourier": (fourier_resize, ("ideal", "scale-shift")),
             "bicubic": (bicubic_resize, ("bicubic",))}


def _interpolation_errors(features: FeatureFn, logits, x: torch.Tensor, sizes: list[int],
                          interp: list[str], axes: dict[str, ScaleAxis], tol: float
                          ) -> dict[str, dict[str, dict[int, float]]]:
    """:func:`operator_errors` for the operators that compare finite rescales (all but ``lie``)."""
    n = x.shape[-1]
    with torch.no_grad():
        ref = {k: v for k, v in features(x).items() if v.dim() == 4}
        ref_logits = logits(x) if logits is not None else None
        names = [*ref, "logits"] if ref_logits is not None else list(ref)
        out = {op: {k: {} for k in names} for op in interp}
        for s in sizes:
            if s >= n:
                continue
            for kind, (rescale, serves) in _RESCALES.items():
                served = [op for op in serves if op in interp]
                if not served:
                    continue
                xs = rescale(x, s)
                got = features(xs)
                for name, fx in ref.items():
                    for op, err in _layer_errors(kind, fx, got[name], n, s, interp,
                                                 axes.get(name), tol).items():
                        out[op][name][s] = err
                if ref_logits is not None:
                    inv = relative_sq_error(ref_logits, logits(xs)).mean()
                    for op in served:
                        out[op]["logits"][s] = inv
    return out


def _layer_errors(kind: str, fx: torch.Tensor, fs: torch.Tensor, n: int, s: int,
                  interp: list[str], axis: ScaleAxis | None, tol: float
                  ) -> dict[str, torch.Tensor]:
    """The errors of one layer at one size under the operators that ``kind`` serves, as 0-d
    tensors on the maps' device: ``f(x)`` is ``fx``, ``f(D_s x)`` is ``fs``; ``axis``: the
    layer's scale axis, if any. ``scale-shift`` is left out where ``s`` is off that axis's
    grid."""
    resize = bicubic_resize if kind == "bicubic" else fourier_resize
    m = fs.shape[-1]
    plain = relative_sq_error(resize(fx, m), resize(fs, m)).mean()
    if kind == "bicubic":
        return {"bicubic": plain}
    out = {"ideal": plain} if "ideal" in interp else {}
    if "scale-shift" in interp:
        if axis is None:
            out["scale-shift"] = plain
        elif pairs := axis.pairs(n, s, tol):
            out["scale-shift"] = _shifted_error(fx, fs, axis, pairs).mean()
    return out


def equivariance_errors(features: FeatureFn, logits: Callable[[torch.Tensor], torch.Tensor] | None,
                        x: torch.Tensor, sizes: Iterable[int], operator: str = "ideal",
                        axes: Mapping[str, ScaleAxis] | None = None
                        ) -> dict[str, dict[int, float]]:
    """Equivariance error per layer and size for images ``x`` at full size (B, C, N, N).

    Returns ``{layer: {size: err}}`` under ``operator`` (:data:`OPERATORS`; ``axes``:
    the model's declared scale axes, read by ``scale-shift``); with ``logits`` given,
    the invariance error of the logits is included under the key ``"logits"``.
    Layers whose maps are not spatial (fewer than 4 dims) are skipped.
    """
    return operator_errors(features, logits, x, sizes, (operator,), axes)[operator]
