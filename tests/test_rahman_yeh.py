"""The ``rahman-yeh`` operator (bench.run.rahman_yeh) against the authors' own function.

``tests/fixtures/fourier/rahman_yeh.npz`` holds what the authors' ``get_equivarience_error``
(ashiq24/Scale_Equivarinat_Fourier_Layer, ``scale_eq/tests/test_equievarience.py``) returned
for a fixed two-layer CNN on fixed inputs, in float64: with their MNIST settings (sizes
8...28, the first map) and their STL-10 settings (49, 57, ..., 97, the last map), and size
by size (see the fixture's SOURCE.md). Ours must give the same numbers; the Fourier network
must be exactly equivariant under it, a plain CNN clearly not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_fixtures import FIXTURES

from scaleqbench import methods
from scaleqbench.bench.run.equivariance import check_equivariance, default_sizes
from scaleqbench.bench.run.rahman_yeh import cut_band, downsample
from scaleqbench.datasets.rahman_yeh import AUTHORS_EQUIVARIANCE, authors_equivariance
from scaleqbench.datasets.scaling import fourier_resize

REF = np.load(FIXTURES / "fourier" / "rahman_yeh.npz")


class Tiny(torch.nn.Module):
    """The fixture's network: conv 5x5 (pad 2) -> ReLU -> conv 3x3 stride 2 (pad 1) -> ReLU."""

    def __init__(self, case: str):
        super().__init__()
        self.w = {k: torch.from_numpy(REF[f"{case}_{k}"]) for k in
                  ("c1_weight", "c1_bias", "c2_weight", "c2_bias")}

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = F.relu(F.conv2d(x, self.w["c1_weight"], self.w["c1_bias"], padding=2))
        b = F.relu(F.conv2d(a, self.w["c2_weight"], self.w["c2_bias"], stride=2, padding=1))
        return {"c1": a, "c2": b}


@pytest.mark.parametrize("case, layer, denominator", [("mnist", "c1", 21), ("stl", "c2", 7)])
def test_the_operator_gives_the_authors_number(case, layer, denominator):
    x = torch.from_numpy(REF[f"{case}_x"]).double()
    result = check_equivariance(Tiny(case), x, "rahman-yeh", logits=False)
    sizes = REF[f"{case}_sizes"].tolist()
    assert list(result.sizes) == sizes  # their sizes by default
    assert result.summary_layer == layer  # their layer: the first map on MNIST, the last on STL
    per_size = REF[f"{case}_per_size"]
    ours = np.array([result.per_layer[layer][s] for s in sizes])
    np.testing.assert_allclose(ours, per_size, rtol=1e-10)
    # their normalisation: the sum over sizes / (sizes + 1) -- and the plain mean beside it
    assert len(sizes) + 1 == denominator
    assert result.summary == pytest.approx(float(REF[f"{case}_error"]), rel=1e-10)
    assert result.summary == pytest.approx(per_size.sum() / denominator, rel=1e-12)
    assert result.plain_summary == pytest.approx(per_size.mean(), rel=1e-12)
    assert f"/ {denominator}" in str(result) and "plain mean" in str(result)


def test_the_authors_measurements_are_described_as_their_scripts_make_them():
    mnist, stl = AUTHORS_EQUIVARIANCE["mnist-res"], AUTHORS_EQUIVARIANCE["stl10-res"]
    assert (mnist.full_size, mnist.sizes, mnist.layer, mnist.denominator) == (
        28, tuple(range(8, 28)), "first", 21)
    assert (stl.full_size, stl.sizes, stl.layer, stl.denominator) == (
        97, (49, 57, 65, 73, 81, 89), "last", 7)
    # MNIST: one batch of 128 (their loop stops past samples=100); STL-10: 6 full batches of 16
    # of the 102 test images at 97 (5,000 // 49)
    assert mnist.images == 128 and stl.images == 16 * ((5000 // 49) // 16) == 96
    assert default_sizes(28, "rahman-yeh") == list(range(8, 28))
    assert default_sizes(97, "rahman-yeh") == [49, 57, 65, 73, 81, 89]
    assert default_sizes(40, "rahman-yeh") == list(range(20, 40))
    assert authors_equivariance(40) is None


def test_their_input_downsampling_keeps_half_the_nyquist_and_the_map_cut_drops_the_top_ring():
    """Ours written from their definitions: ``downsample`` is ``fourier_resize`` at odd sizes
    and adds the Nyquist row and column at even ones; ``cut_band`` keeps ``|k| < m // 2``,
    which at an odd ``m`` leaves out the ring ``(m - 1) / 2``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 28, 28, generator=g, dtype=torch.float64)
    assert torch.allclose(downsample(x, 15), fourier_resize(x, 15), atol=1e-12)
    even = downsample(x, 16)
    assert torch.allclose(fourier_resize(even, 16), fourier_resize(x, 16), atol=1e-12)
    assert (even - fourier_resize(x, 16)).abs().max() > 1e-3  # the Nyquist content
    cut = cut_band(x, 15)
    assert cut.imag.abs().max() < 1e-12
    assert cut_band(x, 1).abs().max() == 0  # a 1 x 1 map: no frequency below its Nyquist
    assert torch.allclose(cut_band(x, 2).real, x.mean((-2, -1), keepdim=True).expand(2, 3, 2, 2))
    assert torch.allclose(cut.real, fourier_resize(fourier_resize(x, 13), 15), atol=1e-12)


def test_the_fourier_network_is_exactly_equivariant_under_it_and_a_cnn_is_not():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 28, 28, generator=g, dtype=torch.float64)
    fourier = methods.create("fourier", config="quick").double()
    result = check_equivariance(fourier, x, "rahman-yeh")
    assert result.summary_layer == "block1"
    assert max(v for d in result.per_layer.values() for v in d.values()) <= 1e-12
    cnn = methods.create("cnn", config="quick").double()
    assert check_equivariance(cnn, x, "rahman-yeh").summary > 1e-3
    assert not math.isnan(check_equivariance(cnn, x, "rahman-yeh").plain_summary)
