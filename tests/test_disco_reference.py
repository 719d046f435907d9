"""scaleqbench's DISCO against the authors' code (ISosnovik/disco@f832fa0; tests/fixtures/disco/SOURCE.md).

What is compared, and why:

* Definitions that are exact (to float32): the equivariance loss of a given basis on
  given images; the layer basis assembled from a proxy basis (Hermite mixing and
  normalisation); a layer's output with the authors' basis injected and fixed weights;
  the integer scales (dilated impulses, bit for bit); the parameter counts.
* The fit, an optimisation result: the authors' run is not reproducible (unseeded
  random start, shuffled mini-batches of random images, Adam), ours is a deterministic
  solve on other random images of the same distribution. The problem is convex, so
  both approximate the same minimiser; what can agree is (a) the loss reached on
  held-out images -- to 1e-3 relative, the minimum is flat -- and (b) the fitted
  kernels, to the sampling noise of the images (measured: seeds of our own fit differ
  by 2.7e-3 relative, the authors' basis and ours by 5e-3 for the STL-10 basis and
  1.4-2.2 % for the MNIST one). Given the same images and the same start, the
  authors' optimiser reaches our kernels to float32 precision (``same_images_stl.npz``):
  that is where the fit is deterministic and can be compared tightly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scaleqbench import methods
from scaleqbench.methods.disco.basis import disco_basis
from scaleqbench.methods.disco.fit import (
    FitOptions,
    dilated_impulses,
    equivariance_loss,
    fit_proxy_basis,
    random_images,
)
from scaleqbench.methods.disco.layers import DiscoConvHH, DiscoLift

FIXTURES = Path(__file__).parent / "fixtures" / "disco"
MNIST_SCALES = [1.0, 1.26, 1.59, 2.0]
STL_SCALES = [1.0, 1.41, 2.0]


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "reference.npz") as z:
        arrays = {k: torch.from_numpy(z[k]) for k in z.files}
    return arrays, json.loads((FIXTURES / "reference.json").read_text())


@pytest.fixture(scope="module")
def heldout(ref):
    # as the driver made them: uint8 / 255 in float32 (then exact in float64)
    return (ref[0]["heldout_images_u8"].float() / 255.0).double()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("name, size, eff", [("mnist", 15, 7), ("stl", 5, 3)])
def test_their_integer_scales_are_our_dilated_impulses(ref, name, size, eff):
    proxy = ref[0][f"{name}_proxy"]
    scales = MNIST_SCALES if name == "mnist" else STL_SCALES
    for j, s in enumerate(scales):
        if s in ref[1][f"{name}_integer_scales"]:
            assert torch.equal(proxy[:, j].double(), dilated_impulses(size, eff, int(s)))


@pytest.mark.parametrize("name", ["mnist", "stl"])
def test_our_loss_is_their_loss(ref, heldout, name):
    scales = MNIST_SCALES if name == "mnist" else STL_SCALES
    proxy = ref[0][f"{name}_proxy"]
    ours = equivariance_loss(proxy.double(), heldout, scales)
    assert ours.item() == pytest.approx(ref[1][f"{name}_heldout_loss_f64"], rel=1e-12)
    # in float32 both carry rounding of the convolutions (theirs is 4e-5 off its float64 value)
    ours32 = equivariance_loss(proxy, heldout.float(), scales)
    assert ours32.item() == pytest.approx(ref[1][f"{name}_heldout_loss"], rel=1e-4)


def test_layer_basis_is_theirs(ref):
    ours = disco_basis(ref[0]["stl_proxy"], "A", 0.9)
    theirs = ref[0]["stl_final_basis"].double()
    assert (ours - theirs).abs().max() < 1e-6 * theirs.abs().max()


def test_lift_output_with_their_basis_and_weights(ref):
    arrays = ref[0]
    basis = disco_basis(arrays["mnist_proxy"], "B", 1.9, mult=1.5, max_order=4)
    layer = DiscoLift(1, 4, basis, MNIST_SCALES)
    with torch.no_grad():
        layer.weight.copy_(arrays["mnist_lift_weight"])
        layer.bias.copy_(arrays["mnist_lift_bias"])
        out = layer(arrays["layer_input"])
    theirs = arrays["mnist_lift_output"]
    assert out.shape == theirs.shape  # (B, C', S, H, W), as theirs
    assert (out - theirs).abs().max() < 1e-5 * theirs.abs().max()


def test_scale_conv_output_with_their_basis_and_weights(ref):
    arrays = ref[0]
    basis = disco_basis(arrays["stl_proxy"], "A", 0.9)
    layer = DiscoConvHH(3, 5, basis, STL_SCALES, bias=False)
    with torch.no_grad():
        layer.weight.copy_(arrays["stl_hh_weight"])
        out = layer(arrays["hh_input"])
    theirs = arrays["stl_hh_output"]
    assert (out - theirs).abs().max() < 1e-5 * theirs.abs().max()


def _fitted_scales_rel(ours: torch.Tensor, theirs: torch.Tensor, scales: list[float]) -> float:
    fitted = [j for j, s in enumerate(scales) if not s.is_integer()]
    return _rel(ours[:, fitted], theirs[:, fitted])


def test_stl_fit_agrees_with_theirs(ref, heldout):
    """Default fit options: the loss reached (held-out) and the kernels, at the precision the
    sampling of random images allows (module docstring; measured 0.99998x loss, 5e-3 kernels)."""
    theirs = ref[0]["stl_proxy"].double()
    ours = fit_proxy_basis(5, 3, STL_SCALES).proxy
    loss = equivariance_loss(ours, heldout, STL_SCALES).item()
    assert loss == pytest.approx(ref[1]["stl_heldout_loss_f64"], rel=1e-3)
    assert _fitted_scales_rel(ours, theirs, STL_SCALES) < 1.5e-2
    # far below where either fit started: the authors' random start is 14x higher
    assert loss < ref[1]["stl_randn_init_heldout_loss"] / 10


def test_mnist_fit_agrees_with_theirs_at_reduced_cost(ref, heldout):
    """Four 96-px images (a few seconds): already within 1 % of their loss."""
    theirs = ref[0]["mnist_proxy"].double()
    ours = fit_proxy_basis(15, 7, MNIST_SCALES, FitOptions(num_images=4, image_size=96)).proxy
    loss = equivariance_loss(ours, heldout, MNIST_SCALES).item()
    assert loss == pytest.approx(ref[1]["mnist_heldout_loss_f64"], rel=1e-2)
    assert _fitted_scales_rel(ours, theirs, MNIST_SCALES) < 0.1


@pytest.mark.slow
def test_mnist_fit_agrees_with_theirs_at_the_default_options(ref, heldout):
    theirs = ref[0]["mnist_proxy"].double()
    ours = fit_proxy_basis(15, 7, MNIST_SCALES).proxy
    loss = equivariance_loss(ours, heldout, MNIST_SCALES).item()
    assert loss == pytest.approx(ref[1]["mnist_heldout_loss_f64"], rel=1e-3)
    assert _fitted_scales_rel(ours, theirs, MNIST_SCALES) < 3e-2


def test_same_images_same_init_same_kernels():
    """The authors' loss and optimiser (Adam, their 6280-step schedule), run full-batch on the
    images our fit uses and started from our fit's first iterate (the least-squares solve),
    end at our kernels to float32 precision: the fit is the same optimisation, solved exactly."""
    with np.load(FIXTURES / "same_images_stl.npz") as z:
        opts = FitOptions(**{k: int(z[k]) for k in ("num_images", "image_size", "seed")})
        theirs = torch.from_numpy(z["from_ours_proxy"]).double()
        their_trace = z["from_ours_loss_trace"]
    start = fit_proxy_basis(5, 3, STL_SCALES, FitOptions(**{**opts.__dict__, "max_iter": 1}))
    fit = fit_proxy_basis(5, 3, STL_SCALES, opts)
    x = random_images(opts.num_images, opts.image_size, opts.seed)
    # their run started where ours starts (it is 5 % from the optimum) ...
    assert their_trace[0] == pytest.approx(start.losses[0] + _integer_pair_loss(x), rel=1e-5)
    assert _fitted_scales_rel(start.proxy, fit.proxy, STL_SCALES) > 1e-2
    # ... and ended on our kernels and loss (measured: 2.6e-7 relative, losses equal to 1e-13)
    assert _fitted_scales_rel(fit.proxy, theirs, STL_SCALES) < 1e-5
    assert equivariance_loss(theirs, x, STL_SCALES).item() == pytest.approx(
        equivariance_loss(fit.proxy, x, STL_SCALES).item(), rel=1e-9)


def _integer_pair_loss(x: torch.Tensor) -> float:
    # the (1, 2) pair of dilated impulses, outside the fit's own loss (exactly zero)
    proxy = torch.stack([dilated_impulses(5, 3, 1), dilated_impulses(5, 3, 2)], 1)
    return equivariance_loss(proxy, x, [1.0, 2.0]).item()


def test_same_images_from_their_random_start_stay_above_the_minimum():
    """From their seeded random start, their schedule ends 2.6 % above the exact minimum on
    these few images: an unconverged optimiser, not a different optimum."""
    with np.load(FIXTURES / "same_images_stl.npz") as z:
        opts = FitOptions(**{k: int(z[k]) for k in ("num_images", "image_size", "seed")})
        theirs = torch.from_numpy(z["from_randn_proxy"]).double()
    x = random_images(opts.num_images, opts.image_size, opts.seed)
    ours = equivariance_loss(fit_proxy_basis(5, 3, STL_SCALES, opts).proxy, x, STL_SCALES)
    assert ours < equivariance_loss(theirs, x, STL_SCALES) < 1.05 * ours


def test_parameter_counts_against_their_models(ref):
    arrays, values = ref
    mnist = methods.create("disco", config="mnist", proxy=arrays["mnist_proxy"])
    plus = methods.create("disco", config="mnist", plus=True, proxy=arrays["mnist_proxy"])
    wrn = methods.create("disco", in_channels=3, config="stl10", proxy=arrays["stl_proxy"])
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)
    # global-max head: the first head Linear sees C3 = 95 features, not the flattened 2x2 map
    assert count(mnist) == values["params_mnist_disco"] - 3 * 95 * 256
    assert count(plus) == values["params_mnist_disco_plus"] - 3 * 95 * 256
    assert count(wrn) == values["params_wrn_disco"]  # the published WRN pools globally already
