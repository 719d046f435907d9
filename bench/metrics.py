"""Metric definitions (DESIGN.md): accuracy, scale consistency, equivariance error.

Equivariance error of a feature map ``f`` at a target size ``s < N`` (``N`` the
full input size), with ``D_m = fourier_resize(., m)``::

    m = size of f(D_s x)
    a = D_m f(x),  b = D_m f(D_s x)
    err = mean over samples of ||a - b||^2 / (||a||^2 + 1e-12),
          the norms taken over channels and space together

This departs from DESIGN.md's per-(sample, channel) ratio on purpose: a ReLU
channel that is dead (or nearly so) on an image has ||a||^2 ~ 0, and its ratio
(anything / 1e-12) swamps the mean, so freshly initialised CNNs read as 1e6.
Pooling over channels is the definition SESN (Sosnovik et al. 2020) and DSS use:
the relative error of the whole feature map of one image.

Reported per layer and per size; the headline ``eq_err`` is the mean over the
size grid of the last spatial layer. The invariant counterpart compares logits:
``||z(x) - z(D_s x)||^2 / (||z(x)||^2 + 1e-12)`` per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch

from scalebench.datasets.scaling import fourier_resize

__all__ = [
    "EPS",
    "accuracy",
    "equivariance_errors",
    "grouped_accuracy",
    "headline_eq_err",
    "relative_sq_error",
    "scale_consistency",
]

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


@torch.no_grad()
def equivariance_errors(features: FeatureFn, logits: Callable[[torch.Tensor], torch.Tensor] | None,
                        x: torch.Tensor, sizes: Iterable[int]) -> dict[str, dict[int, float]]:
    """Equivariance error per layer and size for images ``x`` at full size (B, C, N, N).

    Returns ``{layer: {size: err}}``; with ``logits`` given, the invariance error
    of the logits is included under the key ``"logits"``. Layers whose maps are
    not spatial (fewer than 4 dims) are skipped.
    """
    n = x.shape[-1]
    ref = {k: v for k, v in features(x).items() if v.dim() == 4}
    ref_logits = logits(x) if logits is not None else None
    out: dict[str, dict[int, float]] = {k: {} for k in ref}
    if ref_logits is not None:
        out["logits"] = {}
    for s in sizes:
        if s >= n:
            continue
        xs = fourier_resize(x, s)
        got = features(xs)
        for name, fx in ref.items():
            fs = got[name]
            m = fs.shape[-1]
            err = relative_sq_error(fourier_resize(fx, m), fourier_resize(fs, m))
            out[name][s] = err.mean().item()
        if ref_logits is not None:
            out["logits"][s] = relative_sq_error(ref_logits, logits(xs)).mean().item()
    return out


def headline_eq_err(per_layer: Mapping[str, Mapping[int, float]]) -> float:
    """Mean over the size grid of the last spatial layer (``logits`` excluded)."""
    layers = [k for k in per_layer if k != "logits" and per_layer[k]]
    if not layers:
        return float("nan")
    vals = list(per_layer[layers[-1]].values())
    return sum(vals) / len(vals)
