"""Multi-scale-by-resizing networks of 2014: SiCNN (Xu et al.) and SI-ConvNet (Kanazawa et al.).

Registered methods:

* ``sicnn`` -- Xu, Xiao, Zhang, Yang & Zhang, "Scale-Invariant Convolutional
  Neural Network", arXiv:1411.6369 (2014). Parallel columns share every kernel;
  column ``j`` uses it zoomed by ``scales[j]`` with its L1 norm kept; batch
  norm per column; max over columns before the head.
* ``si_convnet`` -- Kanazawa, Sharma & Jacobs, "Locally Scale-Invariant
  Convolutional Neural Networks", arXiv:1412.5104 (2014). Every layer zooms
  its input by each scale, applies the one kernel, zooms back and takes the
  max over scales.

Configurations (``sicnn[scales=(0.5,1,2)]`` etc. override any keyword):
``mnist`` -- the SESN benchmark's MNIST-scale models (32/63/95, 7x7, scales
0.3 ... 3.33, global head); ``stl10`` -- WRN-16-8 (SiCNN scales 0.67/1/1.5,
SI-ConvNet 0.5/1/2); ``quick`` -- the MNIST model at 12/24/36 channels with
three scales 0.67/1/1.5, the harness's CPU budget. Training recipes are the
published ones (SESN benchmark's experiments_mnist.sh / experiments_stl.sh):
Adam 1e-2, x0.1 at epochs 20/40, 60 epochs, batch 128 on MNIST; SGD Nesterov
0.9, lr 0.1, weight decay 5e-4, x0.2 at 300/400/600/800, 1000 epochs, batch
128 on STL-10.

Layers: :mod:`.rescale`, :mod:`.sicnn_layers`, :mod:`.si_convnet_layers`;
models: :mod:`.mnist`, :mod:`.wrn`. Reference fixtures and their provenance:
``tests/fixtures/{sicnn,si_convnet}/SOURCE.md``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scaleqbench.methods.multicolumn.mnist import MNIST_SCALES, SIConvNetMnist, SiCNNMnist
from scaleqbench.methods.multicolumn.rescale import rescale_on_canvas
from scaleqbench.methods.multicolumn.si_convnet_layers import ScaleInvariantConv2d
from scaleqbench.methods.multicolumn.sicnn_layers import (
    ColumnConv2d,
    ColumnMaxPool,
    column_kernels,
)
from scaleqbench.methods.multicolumn.wrn import SIConvNetWideResNet, SiCNNWideResNet
from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method

__all__ = [
    "MNIST_SCALES", "ColumnConv2d", "ColumnMaxPool", "SIConvNetMnist", "SIConvNetWideResNet",
    "ScaleInvariantConv2d", "SiCNNMnist", "SiCNNWideResNet", "build_si_convnet", "build_sicnn",
    "column_kernels", "rescale_on_canvas",
]

SESN_COMMIT = "deaa16c73ed28fc1e1ced9a8e39892f4ee8bf9ac"
PAPER_SICNN = ("Xu, Xiao, Zhang, Yang & Zhang, Scale-Invariant Convolutional Neural Network, "
               "arXiv:1411.6369, 2014")
PAPER_SI_CONVNET = ("Kanazawa, Sharma & Jacobs, Locally Scale-Invariant Convolutional Neural "
                    "Networks, arXiv:1412.5104, 2014")

# quick: 12/24/36 channels and the quick head as `sesn` / `dss` use; three scales a factor
# ~1.5 apart (the published STL-10 set of SiCNN) keep a whole quick run within the CPU budget
_QUICK = dict(arch="mnist", channels=(12, 24, 36), scales=(0.67, 1.0, 1.5), hidden=128,
              dropout=0.3)
_CONFIGS = {"mnist": dict(arch="mnist"), "stl10": dict(arch="wrn"), "quick": _QUICK}
CARD_SICNN = MethodCard(family="scale-invariant", paper=PAPER_SICNN, year=2014,
                        reference=f"ISosnovik/sesn@{SESN_COMMIT}:models/mnist_xu.py")
CARD_SI_CONVNET = MethodCard(family="scale-invariant", paper=PAPER_SI_CONVNET, year=2014,
                             reference=f"ISosnovik/sesn@{SESN_COMMIT}:models/mnist_kanazawa.py")


def _build(mnist_cls: type[nn.Module], wrn_cls: type[nn.Module], in_channels: int,
           num_classes: int, arch: str, kwargs: dict[str, Any]) -> nn.Module:
    if arch == "mnist":
        return mnist_cls(in_channels=in_channels, num_classes=num_classes, **kwargs)
    if arch == "wrn":
        return wrn_cls(in_channels=in_channels, num_classes=num_classes, **kwargs)
    raise ValueError(f"unknown architecture {arch!r}; use 'mnist' or 'wrn'")


@register_method("sicnn", CARD_SICNN, configs=_CONFIGS)
def build_sicnn(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
                **kwargs: Any) -> nn.Module:
    """SiCNN: columns share one kernel zoomed per scale (L1 norm kept), max over columns."""
    return _build(SiCNNMnist, SiCNNWideResNet, in_channels, num_classes, arch, kwargs)


@register_method("si_convnet", CARD_SI_CONVNET, configs=_CONFIGS)
def build_si_convnet(in_channels: int = 1, num_classes: int = 10, arch: str = "mnist",
                     **kwargs: Any) -> nn.Module:
    """SI-ConvNet: every layer convolves a zoomed pyramid of its input, max over scales."""
    return _build(SIConvNetMnist, SIConvNetWideResNet, in_channels, num_classes, arch, kwargs)
