"""The ``rahman-yeh`` equivariance operator: the error the Fourier paper's tables print.

Rahman & Yeh (NeurIPS 2023) measured their equivariance error with their own code
(``get_equivarience_error`` in ``scale_eq/tests/test_equievarience.py`` of
github.com/ashiq24/Scale_Equivarinat_Fourier_Layer, called by ``train_mnist.py`` and
``train_stl.py``). This module computes the same number for any model, written from
that definition (tests/test_eq_operators.py checks it against their function, run on a
fixed network and input):

* the input: ``D_s x`` is their ideal down-sampling of the full-size image: ``rfft2``
  truncated to the frequencies of an ``s x s`` grid (at an even ``s`` the Nyquist row and
  column are kept, as ``irfft2`` reads them), then ``irfft2``;
* the maps: ``f(x)`` and ``f(D_s x)`` both cut to ``|k| < m // 2`` on the smaller map's
  ``m x m`` grid (their ``resample(..., complex=True, skip_nyq=True)``: the Nyquist row and
  column zeroed; at an odd ``m`` this also drops the top ring ``(m - 1) / 2``), as complex
  maps;
* the ratio: per channel ``||a - b||^2 / (||a||^2 + 1e-6)`` over the grid, then the mean
  over channels; per image, then the mean over images;
* the summary (:func:`~datasets.rahman_yeh.authors_number`): the errors of one layer --
  the first block's map on MNIST (28 px), the last block's on STL-10 (97 px) and on any
  other size -- summed over the sizes and divided by the number of sizes **plus one**:
  their list of sizes holds the full size, which they skip in the sum but count in the
  division (``/ 21`` on MNIST, sizes 8...27; ``/ 7`` on STL-10, sizes 49, 57, ..., 89).
  The plain mean over sizes is given beside it (:func:`plain_mean`).

Unlike ``ideal`` (``eq_err``), the ratio is per channel with a fixed ``1e-6`` (a nearly
dead channel weighs as much as a live one), the Nyquist content of even-sized inputs
reaches the model, and the top ring of odd-sized maps is not compared. The layer, sizes
and images of the authors' two measurements are
:data:`datasets.rahman_yeh.AUTHORS_EQUIVARIANCE`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch

from scaleqbench.datasets.rahman_yeh import authors_equivariance, authors_number

__all__ = ["EPS", "authors_number", "cut_band", "downsample", "per_channel_error",
           "plain_mean", "rahman_yeh_errors", "rahman_yeh_layer"]

#: the authors' ``1e-6`` in the denominator of the per-channel ratio
EPS = 1e-6


def downsample(x: torch.Tensor, s: int) -> torch.Tensor:
    """``(..., n, n) -> (..., s, s)``, ``s <= n``: the real spectrum truncated to an ``s x s``
    grid -- rows ``0..s//2`` (``0..s/2 - 1`` at an even ``s``) and ``-(s//2)..-1``, columns
    ``0..s//2`` -- and synthesised there (``irfft2``, ``norm="forward"``)."""
    n = x.shape[-1]
    spec = torch.fft.rfft2(x, norm="forward")
    half = s // 2
    top = half + 1 if s % 2 else half  # an even size keeps -s/2 (its Nyquist row) below
    out = spec.new_zeros(*x.shape[:-2], s, half + 1)
    out[..., :top, :] = spec[..., :top, :half + 1]
    out[..., s - half:, :] = spec[..., n - half:, :half + 1]
    return torch.fft.irfft2(out, s=(s, s), norm="forward")


def cut_band(f: torch.Tensor, m: int) -> torch.Tensor:
    """``(..., n, n) -> (..., m, m)`` complex, ``m <= n``: the frequencies ``|k_y|, |k_x| <
    m // 2`` of ``f`` synthesised on an ``m x m`` grid (``ifft2``, ``norm="forward"``)."""
    n = f.shape[-1]
    spec = torch.fft.fft2(f, norm="forward")
    out = spec.new_zeros(*f.shape[:-2], m, m)
    if m < 2:  # a 1 x 1 map holds no frequency below the Nyquist: nothing to compare
        return out
    k = torch.arange(1 - m // 2, m // 2, device=f.device)
    src, dst = k % n, k % m
    out[..., dst[:, None], dst[None, :]] = spec[..., src[:, None], src[None, :]]
    return torch.fft.ifft2(out, norm="forward")


def per_channel_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image: the mean over channels of ``||a - b||^2 / (||a||^2 + 1e-6)`` over the grid."""
    num = (a - b).abs().square().sum((-2, -1))
    den = a.abs().square().sum((-2, -1)) + EPS
    return (num / den).mean(1)


def rahman_yeh_errors(features: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
                      logits: Callable[[torch.Tensor], torch.Tensor] | None, x: torch.Tensor,
                      sizes: Iterable[int]) -> dict[str, dict[int, torch.Tensor]]:
    """``{layer: {size: error}}`` (0-d tensors, the mean over the images ``x``) of every
    spatial map, and of the logits where ``logits`` is given (their relative squared
    change, as for the other operators: the authors compare maps only). The spectra are
    taken in float64; the model sees ``D_s x`` in the dtype of ``x``."""
    n = x.shape[-1]
    with torch.no_grad():
        ref = {k: v.double() for k, v in features(x).items() if v.dim() == 4}
        ref_logits = logits(x).double() if logits is not None else None
        out: dict[str, dict[int, torch.Tensor]] = {k: {} for k in ref}
        if ref_logits is not None:
            out["logits"] = {}
        for s in sizes:
            if s >= n:
                continue
            xs = downsample(x.double(), s).to(x.dtype)  # the model's dtype
            got = features(xs)
            for name, fx in ref.items():
                fs = got[name].double()
                m = fs.shape[-1]
                out[name][s] = per_channel_error(cut_band(fx, m), cut_band(fs, m)).mean()
            if ref_logits is not None:
                z = logits(xs).double()
                err = (ref_logits - z).square().sum(1) / (ref_logits.square().sum(1) + EPS)
                out["logits"][s] = err.mean()
    return out


def rahman_yeh_layer(per_layer: Mapping[str, Mapping[int, float]], full_size: int) -> str | None:
    """The map the authors' number reads: the first (28 px: MNIST) or the last (97 px:
    STL-10, and any other size) spatial map with values (``logits`` excluded)."""
    layers = [k for k, v in per_layer.items() if k != "logits" and v]
    known = authors_equivariance(full_size)
    if known is not None:
        return known.layer_of(layers)
    return layers[-1] if layers else None


def plain_mean(per_size: Mapping[int, float]) -> float:
    """The mean over sizes of one layer's errors (what ``/ 21``, ``/ 7`` would be as means)."""
    return sum(per_size.values()) / len(per_size) if per_size else float("nan")
