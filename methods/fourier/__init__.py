"""``fourier``: the truly scale-equivariant Fourier network (Rahman & Yeh, NeurIPS 2023).

Layers (each states what it is equivariant to):

* :class:`~methods.fourier.spectral.SpectralConv2d` -- localized spectral convolution;
* :class:`~methods.fourier.nonlinearity.RingNonlinearity` -- scale-equivariant
  nonlinearity and pooling, batched over rings (``impl="reference"``: the per-ring
  version of :mod:`methods.fourier.reference`);
* :class:`~methods.fourier.models.FourierNet` -- assembly and the per-size head;
* :func:`~methods.fourier.loss.scale_consistency_loss` -- the method's loss.

The layers' large spectra and gradients come from a pool of warm buffers that the
model owns (:mod:`methods.fourier.workspace`), so a training step in a plain script
costs what it costs under ``bench`` (no allocator tuning needed). On the CPU the ring
nonlinearity, the spectral mixing and the head's band moments run on compiled kernels
(:mod:`methods.fourier.native`, :mod:`~methods.fourier.mix_native`,
:mod:`~methods.fourier.moments_native`; ``impl`` chooses, and tensor operations compute
the same functions elsewhere).

Configurations: ``mnist`` (the paper's: 4 blocks 32/64/100/100, G = 28, N = 5,
ReLU, MLP 256), ``stl10`` (3 residual blocks 128/256/512 after a 32-channel lift,
G 64/32/16, N 7/5/5, pooling after blocks 1 and 2, sizes 49..97) and ``quick``. In
every configuration the spectral kernels are the paper's localized ones: real ``N x N``
taps on the global grid (``kernel_form="hilbert"``, complex taps whose imaginary half
acts as a non-localized Hilbert filter, is an option only). The parameter counts are
the real numbers the network holds: the paper's 1.08 M and 27.5 M count each complex
kernel weight twice, and half of those weights are inert in the authors' code.
"""

from __future__ import annotations

from scaleqbench.methods.fourier.loss import scale_consistency_loss
from scaleqbench.methods.fourier.models import FourierBlock, FourierNet, ResidualFourierBlock
from scaleqbench.methods.fourier.nonlinearity import RingNonlinearity
from scaleqbench.methods.fourier.spectral import SpectralConv2d
from scaleqbench.methods.method_card import MethodCard
from scaleqbench.methods.registry import register_method

__all__ = ["NO_DECAY", "FourierBlock", "FourierNet", "ResidualFourierBlock", "RingNonlinearity",
           "SpectralConv2d", "build_fourier", "scale_consistency_loss"]

#: the authors' code: its train_mnist.py flags give the ``mnist`` configuration below (widths
#: 32/64/100/100, MLP 256, dropout 0.75); our layers are written from the paper, tested against
#: our own per-ring reference (:mod:`methods.fourier.reference`) and against this code
#: (tests/test_fourier_reference.py: agreement to float32 where the definitions agree, every
#: departure pinned; the module docstrings of spectral, nonlinearity and model say why)
REFERENCE = ("ashiq24/Scale_Equivarinat_Fourier_Layer@6ed59dacb398f19664368bc4b2cf097be6975131:"
             "scale_eq/models/fourier_seq_mnist.py")

#: the parameters the paper's parameter groups keep out of weight decay (its spectral weights):
#: the Fourier training recipes (scaleqbench.bench.run.recipes) name them
NO_DECAY = ("spectral_weight",)

CONFIGS = {
    "mnist": dict(channels=(32, 64, 100, 100), grids=28, kernels=5, pools=1, min_size=8,
                  max_size=28, act="relu", hidden=256, dropout=0.75),
    "stl10": dict(lift=32, channels=(128, 256, 512), grids=(64, 32, 16), kernels=(7, 5, 5),
                  pools=(2, 2, 1), residual=True, min_size=49, max_size=97, act="relu",
                  hidden=256, dropout=0.75),
    # small and pooled after the first block (the ring evaluations of later blocks then run
    # on 4..14 grids): the whole quick preset run fits a few CPU minutes
    "quick": dict(channels=(8, 16, 32), grids=(28, 14, 14), kernels=(5, 3, 3),
                  pools=(2, 1, 1), min_size=8, max_size=28, act="relu", hidden=64,
                  dropout=0.1),
}

CARD = MethodCard(
    family="fourier",
    paper="Rahman & Yeh, Truly Scale-Equivariant Deep Nets with Fourier Layers, NeurIPS 2023",
    year=2023, reference=REFERENCE,
    input="native")  # the paper fed it every resolution as it is (its baselines: padded)


@register_method("fourier", CARD, configs=CONFIGS)
def build_fourier(in_channels: int = 1, num_classes: int = 10, **kwargs) -> FourierNet:
    """Localized spectral convolutions with per-ring nonlinearities: exact scale equivariance."""
    return FourierNet(in_channels=in_channels, num_classes=num_classes, **kwargs)
