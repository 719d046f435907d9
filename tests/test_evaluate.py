"""Evaluation on ``mnist-scale`` (canvas protocol): per-scale-bin accuracy and the canvas views
behind scale consistency, with hand-built data and models whose answers are known; the
equivariance fields, which are ``check_operators`` on the seeded subset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scaleqbench import methods
from scaleqbench.bench.run.equivariance import check_operators
from scaleqbench.bench.run.evaluate import eq_subset, evaluate, scale_groups
from scaleqbench.bench.run.metrics import headline_eq_err
from scaleqbench.datasets.protocols import CONSISTENCY_FACTORS
from scaleqbench.datasets.scaling import canvas_rescale
from scaleqbench.datasets.splits import ScaledDataset, Split

N = 28
CPU = torch.device("cpu")
# one test image per (label, factor): the edges 0.3 and 1.0 and the middle of every bin
FACTORS = (0.3, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0)
BINS = ("0.3-0.4", "0.4-0.5", "0.5-0.6", "0.6-0.7", "0.7-0.8", "0.8-0.9", "0.9-1.0")
LARGE_PX = 17  # objects at least this wide count as large: factor >= 0.6 (round(28 f) px)


def _value(label: torch.Tensor) -> torch.Tensor:
    return (label.double() + 1) / 11  # the label is written as the object's grey level


def canvas_dataset() -> ScaledDataset:
    """An mnist-scale-like dataset: each full image is a uniform square of grey (label + 1) / 11
    filling the canvas, so that ``canvas_rescale`` by f leaves a centred square of round(28 f)
    pixels of the same grey (an anti-aliased resize of a constant is that constant)."""
    labels = torch.arange(10).repeat_interleave(len(FACTORS))
    factors = torch.tensor(FACTORS).repeat(10)
    full = _value(labels).float().view(-1, 1, 1, 1).expand(-1, 1, N, N).contiguous()
    scaled = canvas_rescale(full, factors)
    split = Split({N: scaled}, {N: labels}, {N: torch.arange(len(labels))}, full, labels,
                  factors.float())
    return ScaledDataset(
        name="mnist-scale", protocol="mnist-scale", source="hand-made", seed=0, in_channels=1,
        num_classes=10, full_size=N, sizes=(N,), scale_kind="factor",
        consistency=("canvas", CONSISTENCY_FACTORS), eq_sizes=(14, 21), augment=None,
        train=split, val=split, test=split)


class ReadsTheGrey(nn.Module):
    """Predicts the label from the grey level at the canvas centre; with ``large_only`` it is
    right only on objects at least LARGE_PX wide (and answers label + 1 on smaller ones)."""

    def __init__(self, large_only: bool = False):
        super().__init__()
        self.large_only = large_only
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        grey = x[:, 0, N // 2 - 1:N // 2 + 1, N // 2 - 1:N // 2 + 1].mean((1, 2)).double()
        label = (grey * 11).round().long() - 1
        if self.large_only:
            width = (x[:, 0, N // 2] > grey[:, None] / 2).sum(1)
            label = torch.where(width >= LARGE_PX, label, (label + 1) % 10)
        return nn.functional.one_hot(label.clamp(0, 9), 10).float()

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError("no spatial features")


def test_a_perfect_model_scores_one_everywhere():
    out = evaluate(ReadsTheGrey(), canvas_dataset(), CPU, batch_size=32)
    assert out["test_acc"] == 1.0
    assert out["per_size_acc"] == dict.fromkeys(BINS, 1.0)
    assert out["scale_consistency"] == 1.0
    assert out["eq_note"] == "no spatial features" and out["equivariance_error"] == {}


def test_a_model_right_only_on_large_digits_gets_the_expected_bins():
    ds = canvas_dataset()
    out = evaluate(ReadsTheGrey(large_only=True), ds, CPU, batch_size=32)
    assert out["per_size_acc"] == {b: float(float(b.split("-")[0]) >= 0.6) for b in BINS}
    right = sum(round(N * f) >= LARGE_PX for f in FACTORS) / len(FACTORS)
    assert out["test_acc"] == pytest.approx(right)
    # every image is seen small (0.3-0.5: wrong) and large (>= 0.6: right) among the views
    assert out["scale_consistency"] == 0.0


def test_consistency_views_are_canvas_zooms_of_the_full_image():
    ds = canvas_dataset()
    model = ReadsTheGrey()
    evaluate(model, ds, CPU, batch_size=len(ds.test))  # one batch per view
    views = [x for x in model.seen if x.shape == ds.test.full.shape][1:]  # [0]: the test split
    assert len(views) >= len(CONSISTENCY_FACTORS)
    for view, factor in zip(views, CONSISTENCY_FACTORS):
        assert torch.equal(view, canvas_rescale(ds.test.full, factor).clamp(0, 1)), factor
        width = int((view[0, 0, N // 2] > 0).sum())
        assert width == round(N * factor)  # the object shrinks, the canvas stays 28x28


def test_views_of_real_digits_are_made_like_the_test_images(mnist_scale):
    """A view at factor f is what the protocol makes of an image at f: canvas_rescale, then
    clamped to the data's range [0, 1] (the test split holds no pixel outside it)."""
    split = mnist_scale.test
    assert split.images[N].min() >= 0 and split.images[N].max() <= 1
    model = ReadsTheGrey()
    evaluate(model, mnist_scale, CPU, batch_size=len(split), eq_images=1)
    views = [x for x in model.seen if x.shape == split.full.shape][1:len(CONSISTENCY_FACTORS) + 1]
    for view, factor in zip(views, CONSISTENCY_FACTORS, strict=True):
        assert view.min() >= 0 and view.max() <= 1, factor
        assert torch.equal(view, canvas_rescale(split.full, factor).clamp(0, 1)), factor


def test_scale_bins_of_the_embedded_mnist_scale(mnist_scale):
    split = mnist_scale.test
    groups = scale_groups(mnist_scale, split)
    assert set(groups) == set(BINS)
    for g, f in zip(groups, split.scale.tolist()):
        lo, hi = map(float, g.split("-"))
        assert lo <= f + 1e-6 and (f < hi or hi == 1.0), (g, f)


def test_evaluate_on_the_embedded_mnist_scale(mnist_scale):
    """A model that always answers 0: its per-bin accuracy is the share of zeros in each bin,
    and it is perfectly scale-consistent."""

    class AlwaysZero(ReadsTheGrey):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(torch.zeros(x.shape[0], dtype=torch.long), 10).float()

    out = evaluate(AlwaysZero(), mnist_scale, CPU)
    labels, groups = mnist_scale.test.full_labels, scale_groups(mnist_scale, mnist_scale.test)
    for b in BINS:
        in_bin = labels[torch.tensor([g == b for g in groups])]
        assert out["per_size_acc"][b] == pytest.approx((in_bin == 0).double().mean().item())
    assert out["test_acc"] == pytest.approx((labels == 0).double().mean().item())
    assert out["scale_consistency"] == 1.0


def test_the_equivariance_fields_are_check_equivariance_on_the_seeded_subset():
    """``evaluate`` records what :func:`check_operators` measures on :func:`eq_subset`'s images
    at the protocol's sizes: ``ideal`` and ``scale-shift``, the logits through the input
    policy, and the summaries as the run record defines them."""
    ds = canvas_dataset()
    torch.manual_seed(0)
    model = methods.create("sesn_vector", config="quick")
    out = evaluate(model, ds, CPU, batch_size=32, eq_images=7, seed=3, input="pad")
    results = check_operators(model, eq_subset(ds, 7, 3), ("ideal", "scale-shift"),
                              ds.eq_sizes, input="pad")
    ideal, shifted = results["ideal"], results["scale-shift"]
    keyed = {layer: {str(s): v for s, v in d.items()} for layer, d in ideal.nested().items()}
    assert out["equivariance_error"] == keyed and list(keyed)[-1] == "logits"
    assert out["eq_err"] == ideal.summary == headline_eq_err(ideal.nested())
    assert out["logit_inv_err"] == pytest.approx(sum(ideal.logits.values()) / 2, rel=1e-15)
    assert out["eq_err_scale_shift"] == shifted.summary
    assert set(out["equivariance_error_ops"]["scale-shift"]["block1"]) == {"14"}  # 28/2
    assert out["scale_shift_left_out"] == {k: {str(s): n for s, n in d.items()}
                                           for k, d in shifted.left_out.items()}
    assert 0 < out["eq_err"] < 10 and "eq_note" not in out
