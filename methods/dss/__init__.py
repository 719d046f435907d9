"""DSS -- Worrall & Welling, "Deep Scale-spaces: Equivariance Over Scale", NeurIPS 2019.

Registered methods:

* ``dss`` -- the default, the *vector* variant: one scale-space lift, the scale
  axis kept through every layer, max over scales before the head. It is the
  paper's own construction (a scale-space carried through the network) and the
  better of the two on MNIST-scale in SESN's comparison; the published STL-10
  model is of this kind too.
* ``dss_vector`` -- the same model under its explicit name.
* ``dss_scalar`` -- max over scales after every convolution, re-lifting each
  scalar map before the next one (MNIST configurations only: no scalar STL-10
  model was published).

Every name also takes ``variant="vector" | "scalar"`` as a keyword override on
the MNIST skeleton. Configurations: ``mnist`` (the `cnn` skeleton 32/63/95,
2 scales, base 2, zero scale 0.25, scale depth 1), ``stl10`` (WRN-16-8, 4
scales, zero scale 0.5, scale depth 2), ``quick`` (the MNIST model at widths
12/24/36, the protocol's quick recipe). Layers: :mod:`.scale_space`, :mod:`.layers`; models:
:mod:`.models`, :mod:`.wrn`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from scaleqbench.methods.dss.layers import DilatedSpatialMaxPool, ScaleBatchNorm, ScaleConv
from scaleqbench.methods.dss.models import DSSMnist
from scaleqbench.methods.dss.scale_space import ScaleSpaceLift, discrete_gaussian
from scaleqbench.methods.dss.wrn import DSSWideResNet
from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method
from scaleqbench.methods.style import BUILTIN_STYLES

__all__ = [
    "DSSMnist", "DSSWideResNet", "DilatedSpatialMaxPool", "ScaleBatchNorm", "ScaleConv",
    "ScaleSpaceLift", "build_dss", "discrete_gaussian",
]

PAPER = "Worrall & Welling, Deep Scale-spaces: Equivariance Over Scale, NeurIPS 2019"
#: the SESN benchmark's DSS models, which the fixtures in tests/fixtures/dss/ were made from
#: (STL-10: models/stl_dss.py; layers: models/impl/deep_scale_space.py)
REFERENCE = "ISosnovik/sesn@deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac:models/mnist_dss.py"

_MNIST = dict(channels=(32, 63, 95), n_scales=2, zero_scale=0.25, scale_depth=1)
# quick: narrower than `cnn`'s quick (16/32/48) because two scales cost about twice a
# plain convolution; at 12/24/36 a whole quick run stays near 50 s of one CPU core
_QUICK = dict(channels=(12, 24, 36), n_scales=2, zero_scale=0.25, scale_depth=1,
              hidden=128, dropout=0.3)
_STL10 = dict(arch="wrn", depth=16, widths=(16, 128, 240, 512), n_scales=4, zero_scale=0.5,
              scale_depths=(2, 2, 1), dropout=0.3)

CARD = MethodCard(family="scale-equivariant", paper=PAPER, year=2019, reference=REFERENCE)


def build_dss(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
              **kwargs: Any) -> nn.Module:
    """DSS network: ``arch="mnist"`` (scalar / vector on the `cnn` skeleton) or ``"wrn"``."""
    if arch == "mnist":
        return DSSMnist(in_channels=in_channels, num_classes=num_classes, **kwargs)
    if arch == "wrn":
        if kwargs.pop("variant", "vector") != "vector":
            raise ValueError("the DSS wide ResNet exists only as the vector variant")
        return DSSWideResNet(in_channels=in_channels, num_classes=num_classes, **kwargs)
    raise ValueError(f"unknown DSS architecture {arch!r}; use 'mnist' or 'wrn'")


def _vector_configs() -> dict[str, dict[str, Any]]:
    return {"mnist": dict(_MNIST, variant="vector"), "stl10": dict(_STL10),
            "quick": dict(_QUICK, variant="vector")}


@register_method("dss", replace(CARD, style=BUILTIN_STYLES["dss"]),
                 configs=_vector_configs())
def build_dss_default(in_channels: int = 1, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Deep scale-spaces (vector variant): discrete Gaussian lift, dilated scale convolutions."""
    return build_dss(in_channels, num_classes, **kwargs)


@register_method("dss_vector", replace(CARD, style=BUILTIN_STYLES["dss_vector"]),
                 configs=_vector_configs(), alias_of="dss")
def build_dss_vector(in_channels: int = 1, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Deep scale-spaces, vector variant: scale axis kept to the end, max over scales."""
    return build_dss(in_channels, num_classes, **kwargs)


@register_method("dss_scalar", replace(CARD, style=BUILTIN_STYLES["dss_scalar"]),
                 configs={"mnist": dict(_MNIST, variant="scalar"),
                          "quick": dict(_QUICK, variant="scalar")})
def build_dss_scalar(in_channels: int = 1, num_classes: int = 10, **kwargs: Any) -> nn.Module:
    """Deep scale-spaces, scalar variant: max over scales and a re-lift at every layer."""
    return build_dss(in_channels, num_classes, **kwargs)
