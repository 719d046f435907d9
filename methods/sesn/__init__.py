"""SESN -- Scale-Equivariant Steerable Networks (Sosnovik, Szmaja & Smeulders, ICLR 2020).

Registered methods:

* ``sesn`` -- the scalar variant (scale max after every block). It is the
  default because its block outputs carry no scale axis: each is a map that is
  (approximately) equivariant to dilations without a scale shift, which is
  exactly what the benchmark's per-channel equivariance error compares.
* ``sesn_vector`` -- the vector variant (scale axis kept through blocks 1-2,
  max over scales at the end of block 3).

Keyword options (``sesn[plus=True]``, ``sesn_vector[scale_depth=2]``, ...):
``variant`` (``scalar`` / ``vector``), ``plus`` (the published "+" hyper-
parameters, tuned for training with rescale augmentation), and any
:class:`~methods.sesn.models.SESNMnist` argument (``scales``, ``kernel_size``,
``mult``, ``effective_size``, ``basis``, ``scale_depth``, ``channels`` ...).

Configurations: ``mnist`` (published MNIST config of the variant), ``stl10``
(WRN-16-8 SESN, variant B for ``sesn``, A for ``sesn_vector``) and ``quick``
(12/24/36 channels, k 7, scales 1/1.41/2: the harness's CPU budget).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method
from scaleqbench.methods.sesn.models import SESNMnist, SESNWideResNet, mnist_hparams
from scaleqbench.methods.style import BUILTIN_STYLES

__all__ = ["SESNMnist", "SESNWideResNet", "build_sesn", "build_sesn_vector"]

PAPER = "Sosnovik, Szmaja & Smeulders, Scale-Equivariant Steerable Networks, ICLR 2020"
#: the authors' code the fixtures in tests/fixtures/sesn/ were made from (STL-10: models/stl_ses.py)
REFERENCE = "ISosnovik/sesn@deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac:models/mnist_ses.py"

CARD = MethodCard(family="scale-equivariant", paper=PAPER, year=2020, reference=REFERENCE)

#: quick: the cnn baseline's quick head; 12/24/36 channels, a 7x7 kernel and 3 scales
#: spanning a factor 2 (supports 3/5/7), so that the whole quick run costs ~1.6x the
#: cnn's quick run (measured on 2 shared CPU cores). Scale-kernel depth 1, basis B,
#: effective size 7 as published.
QUICK = dict(channels=(12, 24, 36), hidden=128, dropout=0.3, kernel_size=7,
             scales=(1.0, 1.41, 2.0), mult=1.5)


def _build(default_variant: str, in_channels: int, num_classes: int, arch: str,
           variant: str | None, plus: bool, kwargs: dict[str, Any]) -> nn.Module:
    if arch == "wrn":
        if variant is not None or plus:
            raise ValueError("the STL-10 WRN takes wrn_variant='A'|'B'|'C', not variant/plus")
        return SESNWideResNet(in_channels=in_channels, num_classes=num_classes, **kwargs)
    if arch != "mnist":
        raise ValueError(f"unknown SESN arch {arch!r}; use 'mnist' or 'wrn'")
    variant = variant or default_variant
    hp = mnist_hparams(variant, plus)
    hp.update(kwargs)  # explicit keywords win over the published table
    return SESNMnist(in_channels=in_channels, num_classes=num_classes, variant=variant, **hp)


@register_method(
    "sesn", replace(CARD, style=BUILTIN_STYLES["sesn"]),
    configs={
        "mnist": dict(arch="mnist"),
        "stl10": dict(arch="wrn", wrn_variant="B"),
        "quick": dict(arch="mnist", **QUICK),
    })
def build_sesn(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
               variant: str | None = None, plus: bool = False, **kwargs: Any) -> nn.Module:
    """SESN (scalar): Hermite-Gaussian steerable convs at several scales, scale max after each block."""
    return _build("scalar", in_channels, num_classes, arch, variant, plus, kwargs)


@register_method(
    "sesn_vector", replace(CARD, style=BUILTIN_STYLES["sesn_vector"]),
    configs={
        "mnist": dict(arch="mnist"),
        "stl10": dict(arch="wrn", wrn_variant="A"),
        "quick": dict(arch="mnist", **QUICK),
    })
def build_sesn_vector(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
                      variant: str | None = None, plus: bool = False, **kwargs: Any) -> nn.Module:
    """SESN (vector): scale axis kept through the network, scale max at the end."""
    return _build("vector", in_channels, num_classes, arch, variant, plus, kwargs)
