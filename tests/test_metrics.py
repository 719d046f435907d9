"""The metrics on operators whose answer is known."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from scaleqbench.bench.run.metrics import (
    equivariance_errors,
    grouped_accuracy,
    headline_eq_err,
    relative_sq_error,
    scale_consistency,
    scale_shift_headline,
    summary_layer,
)
from scaleqbench.datasets.scaling import fourier_resize

SIZES = range(8, 28)


def images(n=6, size=28, seed=0):
    return torch.rand(n, 2, size, size, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)


def test_identity_network_has_zero_error():
    errs = equivariance_errors(lambda x: {"id": x}, None, images(), SIZES)
    assert max(errs["id"].values()) < 1e-24
    assert set(errs["id"]) == set(SIZES)


def test_fourier_resize_network_has_zero_error():
    def f(x):
        return {"half": fourier_resize(x, x.shape[-1] // 2), "same": fourier_resize(x, x.shape[-1])}

    errs = equivariance_errors(f, None, images(), SIZES)
    assert max(errs["half"].values()) < 1e-24 and max(errs["same"].values()) < 1e-24


def test_box_blur_has_a_positive_error():
    def blur(x):
        c = x.shape[1]
        k = torch.full((c, 1, 3, 3), 1 / 9, dtype=x.dtype)
        return {"blur": F.conv2d(x, k, padding=1, groups=c)}

    errs = equivariance_errors(blur, None, images(), SIZES)
    assert min(errs["blur"].values()) > 1e-4
    # a coarser image is blurred relatively more: the error grows as s shrinks
    assert errs["blur"][8] > errs["blur"][27]


def test_invariance_error_of_logits_and_headline():
    def feats(x):
        return {"a": x, "b": fourier_resize(x, 4)}

    def logits(x):
        return x.mean(dim=(-2, -1))  # the DC coefficient: exactly invariant

    errs = equivariance_errors(feats, logits, images(), SIZES)
    assert max(errs["logits"].values()) < 1e-24
    assert headline_eq_err({"a": {8: 1.0, 9: 3.0}, "b": {8: 0.5, 9: 0.25}, "logits": {8: 9.0}}) \
        == 0.375


def test_relative_error_is_per_sample_over_channels_and_space():
    a = torch.ones(2, 3, 4, 4)
    b = a.clone()
    b[1, 2] = 0  # one of three equal-energy channels lost: a third of the energy
    err = relative_sq_error(a, b)
    assert err.shape == (2,) and err[0] == 0 and abs(err[1] - 1 / 3) < 1e-12


def test_a_dead_channel_does_not_swamp_the_error():
    # a channel that is (almost) zero in f(x) but not in f(D x): per-channel ratios would
    # read 1e-2 / 1e-12 = 1e10; the per-image ratio stays the relative energy.
    a = torch.ones(1, 2, 4, 4)
    a[0, 1] = 0
    b = a.clone()
    b[0, 1] = 0.025  # 16 * 0.025^2 = 0.01 of stray energy against 16 in channel 0
    err = relative_sq_error(a, b).item()
    assert abs(err - 0.01 / 16) < 1e-9  # 0.025 is not exact in float32


def test_scale_consistency_counts_images_with_one_label():
    preds = torch.tensor([[1, 2, 3, 4], [1, 2, 0, 4], [1, 5, 3, 4]])
    assert scale_consistency(preds) == 0.5


def test_grouped_accuracy_sorts_numerically():
    acc = grouped_accuracy(torch.tensor([1, 1, 0, 0]), torch.tensor([1, 0, 0, 1]),
                           ["10", "9", "9", "10"])
    assert list(acc) == ["9", "10"] and acc == {"9": 0.5, "10": 0.5}


def test_the_summary_layer_is_the_last_spatial_one_or_the_deepest_lifted_one():
    from scaleqbench.methods.scale_axis import ScaleAxis

    per_layer = {"a": {8: 1.0}, "b": {8: 2.0, 9: 4.0}, "c": {}, "logits": {8: 9.0}}
    assert summary_layer(per_layer) == "b"  # "c" has no value, logits are not a map
    assert headline_eq_err(per_layer) == 3.0
    axes = {"a": ScaleAxis((1.0, 2.0))}
    assert summary_layer(per_layer, axes) == "a"
    assert scale_shift_headline(per_layer, axes) == 1.0
    assert summary_layer({"logits": {8: 1.0}}) is None
    assert math.isnan(headline_eq_err({"logits": {8: 1.0}}))
