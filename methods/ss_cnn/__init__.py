"""SS-CNN -- Ghosh & Gupta, "Scale Steerable Filters for Locally Scale-Invariant CNNs", 2019.

Filters are combinations of log-radial harmonics, whose dilations are phase
rotations of their complex coefficients; every layer applies its filter at
several kernel sizes, steered to each, and keeps the maximum over the sizes.
Registered method: ``ss_cnn``.

Configurations: ``mnist`` (SESN benchmark's ``mnist_ss_28``: widths 30/60/90,
base size 11, sizes 5...13, frequencies 0.5/1/2, 9 orientations; global
max-pool head), ``stl10`` (``wrn_16_8_ss``: WRN-16-8 at widths 11/88/176/352,
base 3, the first conv at sizes 3/5/7, the residual blocks' convs at size 3) and
``quick`` (widths 12/24/36, base 5, sizes 3/5/7, the ``cnn`` quick head: the
harness's CPU budget). Basis: :mod:`.basis`; layer: :mod:`.layers`; models:
:mod:`.models`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method
from scaleqbench.methods.ss_cnn.basis import log_radial_basis
from scaleqbench.methods.ss_cnn.layers import ScaleSteerableConv
from scaleqbench.methods.ss_cnn.models import SSCNNMnist, SSCNNWideResNet

__all__ = ["SSCNNMnist", "SSCNNWideResNet", "ScaleSteerableConv", "build_ss_cnn",
           "log_radial_basis"]

PAPER = ("Ghosh & Gupta, Scale Steerable Filters for Locally Scale-Invariant Convolutional "
         "Neural Networks, ICML 2019 workshop (arXiv:1906.03861)")
REFERENCE = "ISosnovik/sesn@deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac:models/mnist_ss.py"

# quick: sizes 3/5/7 cost 83 multiply-adds per pair of channels and pixel (a 7x7 conv: 49),
# at widths 12/24/36 about the `cnn` quick model's convolution cost.
_QUICK = dict(arch="mnist", channels=(12, 24, 36), base_size=5, sizes=(3, 5, 7), hidden=128,
              dropout=0.3)

CARD = MethodCard(family="scale-invariant", paper=PAPER, year=2019, reference=REFERENCE)


@register_method(
    "ss_cnn", CARD,
    configs={"mnist": dict(arch="mnist"), "stl10": dict(arch="wrn"), "quick": dict(_QUICK)})
def build_ss_cnn(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
                 **kwargs: Any) -> nn.Module:
    """SS-CNN: log-radial harmonic filters steered to several kernel sizes, max over the sizes."""
    if arch == "mnist":
        return SSCNNMnist(in_channels=in_channels, num_classes=num_classes, **kwargs)
    if arch == "wrn":
        return SSCNNWideResNet(in_channels=in_channels, num_classes=num_classes, **kwargs)
    raise ValueError(f"unknown SS-CNN architecture {arch!r}; use 'mnist' or 'wrn'")
