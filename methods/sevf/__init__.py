"""SEVF -- Marcos, Kellenberger, Lobry & Tuia, "Scale equivariance in CNNs with vector fields".

Every filter runs at several scales (the input resized by ``base**e``); each
pixel keeps the best scale as a vector: its length is the largest response
(after ReLU), its angle encodes which scale gave it. Registered methods:

* ``sevf`` -- the vector model (the paper's construction): the vector field is
  carried through the network and convolved by vector-to-vector SEVF convs;
  the head reads the magnitudes.
* ``sevf_scalar`` -- the scalar model: every conv keeps only its magnitude.

Configurations: ``mnist`` (SESN benchmark's ``mnist_sevf_vector_28`` /
``mnist_sevf_scalar_28``: 7x7 kernels, 8 scales 1.26^-4...1.26^3, widths
23/45/68 and 32/63/95, global max-pool head), ``stl10`` (a WRN-16-8 built as
the benchmark's other STL-10 models are; the benchmark has no STL-10 SEVF, see
:mod:`.wrn`) and ``quick`` (3 scales 0.5, 0.71, 1, widths 12/24/36 scalar and
9/17/26 vector, the ``cnn`` quick head: the harness's CPU budget). Layers:
:mod:`.layers`, :mod:`.vector_field`; models: :mod:`.models`, :mod:`.wrn`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method
from scaleqbench.methods.sevf.layers import ScaleGrid, SEVFConv, SEVFLift, SEVFScalarConv
from scaleqbench.methods.sevf.models import SEVFMnist
from scaleqbench.methods.sevf.vector_field import VectorBatchNorm, VectorMaxPool
from scaleqbench.methods.sevf.wrn import SEVFWideResNet

__all__ = [
    "ScaleGrid", "SEVFConv", "SEVFLift", "SEVFMnist", "SEVFScalarConv", "SEVFWideResNet",
    "VectorBatchNorm", "VectorMaxPool", "build_sevf", "build_sevf_scalar",
]

PAPER = ("Marcos, Kellenberger, Lobry & Tuia, Scale equivariance in CNNs with vector fields, "
         "ICML 2018 workshop (arXiv:1807.11783)")
REFERENCE = "ISosnovik/sesn@deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac:models/mnist_sevf.py"

# quick: 3 scales a factor 1.41 apart, all shrinking the input (filters 1, 1.41 and 2 times
# their size): the SEVF conv's cost grows with the summed area of the resized inputs, here
# 0.25 + 0.5 + 1 times a plain conv, against 10.5 for the published grid (0.4...2.0)
_QUICK_GRID = dict(n_small=3, n_big=0, base=1.41)
_QUICK = dict(arch="mnist", channels=(12, 24, 36), hidden=128, dropout=0.3, **_QUICK_GRID)
# the vector model narrowed as published (23/45/68 for 32/63/95): about the scalar's parameters
_QUICK_VECTOR = dict(_QUICK, channels=(9, 17, 26))

CARD = MethodCard(family="scale-equivariant", paper=PAPER, year=2018, reference=REFERENCE)


def _build(variant: str, in_channels: int, num_classes: int, arch: str,
           kwargs: dict[str, Any]) -> nn.Module:
    variant = kwargs.pop("variant", variant)
    if arch == "mnist":
        return SEVFMnist(in_channels=in_channels, num_classes=num_classes, variant=variant,
                         **kwargs)
    if arch == "wrn":
        return SEVFWideResNet(in_channels=in_channels, num_classes=num_classes, variant=variant,
                              **kwargs)
    raise ValueError(f"unknown SEVF architecture {arch!r}; use 'mnist' or 'wrn'")


@register_method(
    "sevf", CARD,
    configs={"mnist": dict(arch="mnist"), "stl10": dict(arch="wrn"), "quick": dict(_QUICK_VECTOR)})
def build_sevf(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
               **kwargs: Any) -> nn.Module:
    """SEVF (vector): best scale per pixel as a vector field, vector convolutions throughout."""
    return _build("vector", in_channels, num_classes, arch, kwargs)


@register_method(
    "sevf_scalar", CARD,
    configs={"mnist": dict(arch="mnist"), "stl10": dict(arch="wrn"), "quick": dict(_QUICK)})
def build_sevf_scalar(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
                      **kwargs: Any) -> nn.Module:
    """SEVF (scalar): each conv keeps the magnitude of its best scale, relu(max over scales)."""
    return _build("scalar", in_channels, num_classes, arch, kwargs)
