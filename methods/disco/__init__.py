"""DISCO -- accurate Discrete Scale Convolutions (Sosnovik, Moskalev & Smeulders, BMVC 2021).

A DISCO network is a SESN network (:mod:`methods.sesn`) whose basis is made for
discrete scale equivariance instead of sampled from continuous Hermite
functions: at integer scales the scale-1 kernels are dilated exactly, at the
other scales the basis minimises the paper's equivariance loss on random
images (:mod:`methods.disco.fit`). The fit is a build step, run once per
configuration and cached on disk (:mod:`methods.disco.cache`). Fit and model build
on one CPU core, empty cache (measured 2026-12-02): 0.3 s for the quick and STL-10
basis (k 5, eff 3, scales 1/1.41/2), 7.3 s for the MNIST basis (k 15, eff 7, four
scales); from the cache, 0.02 s.

Registered method ``disco``. Configurations:

* ``mnist`` -- the published Scale-MNIST model (2x upsampling, 32/63/95 channels,
  k 15, eff 7, scales ``2^(i/3)`` rounded: 1/1.26/1.59/2, basis B with
  ``min_scale`` 1.9, ``mult`` 1.5, ``max_order`` 4) with a global-max head
  (:class:`~methods.disco.models.DiscoMnist` says why); ``disco[plus=True]``
  takes the Scale-MNIST+ basis (``mult`` 1.9);
* ``stl10`` -- the published WRN-16-8 (k 5, eff 3, scales 1/1.41/2, basis A
  with ``min_scale`` 0.9, re-lift in groups 2 and 3);
* ``quick`` -- the MNIST network without upsampling at 12/24/36 channels with the
  STL-10 basis (k 5, eff 3, scales 1/1.41/2): the harness's CPU budget.

Keyword options: ``size``, ``effective_size``, ``scales``, ``basis`` (``A``/``B``),
``min_scale``, ``mult``, ``max_order``, ``fit`` (a :class:`~methods.disco.fit.FitOptions`
or a dict of its fields), ``proxy`` (a proxy basis tensor to use instead of the
fitted one, e.g. the authors' precalculated basis), ``cache_dir``, and the
model's own (``channels``, ``hidden``, ``dropout``, ``upsample``; ``depth``,
``widen``, ``dropout`` for the WRN).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from scaleqbench.methods.disco.basis import disco_basis
from scaleqbench.methods.disco.cache import load_or_fit
from scaleqbench.methods.disco.fit import FitOptions, check_scales
from scaleqbench.methods.disco.models import DiscoMnist, DiscoWideResNet, ScaleAxis
from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method

__all__ = ["DiscoMnist", "DiscoWideResNet", "FitOptions", "ScaleAxis", "build_disco"]

PAPER = "Sosnovik, Moskalev & Smeulders, DISCO: accurate Discrete Scale Convolutions, BMVC 2021"
REFERENCE = "ISosnovik/disco@f832fa0636caae59d4fc693e48582a06006e189d:models/mnist_disco_models.py"

CARD = MethodCard(family="scale-equivariant", paper=PAPER, year=2021, reference=REFERENCE)

MNIST_BASIS = dict(size=15, effective_size=7, scales=(1.0, 1.26, 1.59, 2.0), basis="B",
                   min_scale=1.9, mult=1.5, max_order=4)
#: Scale-MNIST+ (exp_mnist.sh, extra scaling 0.5): the same basis with mult 1.9
PLUS_MULT = 1.9
STL10_BASIS = dict(size=5, effective_size=3, scales=(1.0, 1.41, 2.0), basis="A", min_scale=0.9)
#: quick: the STL-10 basis on the MNIST network at the cnn baseline's quick widths, no 2x
#: upsampling (it would quadruple the cost): the quick run costs about as much as sesn's
QUICK = dict(arch="mnist", **STL10_BASIS, channels=(12, 24, 36), hidden=128, dropout=0.3,
             upsample=False)


def _fit_options(fit: FitOptions | Mapping[str, Any] | None) -> FitOptions:
    if fit is None:
        return FitOptions()
    return fit if isinstance(fit, FitOptions) else FitOptions(**fit)


def _proxy(size: int, effective_size: int, scales: Sequence[float], proxy: torch.Tensor | None,
           fit: FitOptions, cache_dir: str | None) -> torch.Tensor:
    if proxy is None:
        return load_or_fit(size, effective_size, scales, fit, cache_dir=cache_dir)
    shape = (effective_size ** 2, len(scales), size, size)
    if tuple(proxy.shape) != shape:
        raise ValueError(f"the given DISCO proxy basis is {tuple(proxy.shape)}, expected {shape}")
    return proxy.to(torch.float64)


@register_method(
    "disco", CARD,
    configs={
        "mnist": dict(arch="mnist", **MNIST_BASIS),
        "stl10": dict(arch="wrn", **STL10_BASIS),
        "quick": QUICK,
    })
def build_disco(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
                size: int = 15, effective_size: int = 7,
                scales: Sequence[float] = (1.0, 1.26, 1.59, 2.0), basis: str = "B",
                min_scale: float = 1.9, mult: float = 1.5, max_order: int = 4,
                plus: bool = False, fit: FitOptions | Mapping[str, Any] | None = None,
                proxy: torch.Tensor | None = None, cache_dir: str | None = None,
                **kwargs: Any) -> nn.Module:
    """DISCO: SESN's scale convolutions with a basis fitted for discrete scale equivariance."""
    scales = check_scales(size, effective_size, scales)
    if plus:
        if arch != "mnist":
            raise ValueError("plus=True selects the Scale-MNIST+ basis; it has no STL-10 variant")
        mult = PLUS_MULT
    p = _proxy(size, effective_size, scales, proxy, _fit_options(fit), cache_dir)
    layer_basis = disco_basis(p, basis, min_scale, mult, max_order)
    if arch == "mnist":
        return DiscoMnist(layer_basis, scales, in_channels=in_channels, num_classes=num_classes,
                          **kwargs)
    if arch == "wrn":
        return DiscoWideResNet(layer_basis, scales, in_channels=in_channels,
                               num_classes=num_classes, **kwargs)
    raise ValueError(f"unknown DISCO arch {arch!r}; use 'mnist' or 'wrn'")
