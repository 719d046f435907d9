"""Scale consistency on a seeded subset of test images (the ``quick`` preset's
``consistency_images``): the same images for every method of a seed, exactly the
views of those images, and per-image outcomes that pair across methods; presets give
their protocol fields to every run unless the sweep sets them."""

from __future__ import annotations

import pytest
import torch

from scaleqbench.bench.run.evaluate import consistency_subset, evaluate
from scaleqbench.bench.spec import PRESETS, expand
from scaleqbench.bench.store.per_image import unpack_bits
from scaleqbench.datasets.protocols import CONSISTENCY_FACTORS
from scaleqbench.datasets.scaling import canvas_rescale
from test_evaluate import CPU, ReadsTheGrey, canvas_dataset


def test_the_quick_preset_sets_its_measurement_sizes_and_the_paper_preset_measures_all():
    quick = expand([("cnn", {})], "mnist-res", [0, 1], "quick")
    assert {(s.eq_images, s.consistency_images) for s in quick} == {(64, 500)}
    paper = expand([("cnn", {})], "mnist-res", [0], "paper")
    assert (paper[0].eq_images, paper[0].consistency_images) == (256, None)
    mine = expand([("cnn", {})], "mnist-res", [0], "quick", consistency_images=None)
    assert mine[0].consistency_images is None and mine[0].eq_images == 64
    assert mine[0].run_id != quick[0].run_id  # part of the protocol, so of the identity
    assert dict(PRESETS["quick"].protocol) == {"eq_images": 64, "consistency_images": 500}


def test_the_subset_depends_on_the_seed_only_and_covers_nothing_twice():
    ds = canvas_dataset()
    a, b = consistency_subset(ds, 30, seed=4), consistency_subset(ds, 30, seed=4)
    assert torch.equal(a, b) and len(a) == 30 == len(set(a.tolist()))
    assert torch.equal(a, a.sort().values) and int(a.max()) < len(ds.test)
    assert not torch.equal(a, consistency_subset(ds, 30, seed=5))
    assert consistency_subset(ds, None, 0) is None
    assert consistency_subset(ds, len(ds.test), 0) is None  # all of them: no subset


def test_consistency_on_a_subset_is_the_full_measurement_restricted_to_it():
    """A model right only on large digits: per image, it is consistent iff every view of it is
    answered the same; on a subset the bits are exactly the full run's bits at those images,
    the score their mean, while test accuracy still counts every test image."""
    ds = canvas_dataset()
    model = ReadsTheGrey(large_only=True)
    full = evaluate(model, ds, CPU, batch_size=32, eq_images=1)
    part = evaluate(model, ds, CPU, batch_size=32, eq_images=1, consistency_images=40, seed=2)
    index = consistency_subset(ds, 40, 2)
    n = len(ds.test)
    all_bits = torch.tensor(unpack_bits(full["per_image"]["consistent"])[:n])
    bits = torch.tensor(unpack_bits(part["per_image"]["consistent"])[:40])
    assert torch.equal(bits, all_bits[index])
    assert part["scale_consistency"] == pytest.approx(bits.double().mean().item())
    assert part["test_acc"] == full["test_acc"]
    assert part["per_image"]["test_correct"] == full["per_image"]["test_correct"]


def test_the_views_are_made_of_the_subset_images_only():
    ds = canvas_dataset()
    model = ReadsTheGrey()
    evaluate(model, ds, CPU, batch_size=len(ds.test), eq_images=1, consistency_images=25,
             seed=1)
    chosen = ds.test.full[consistency_subset(ds, 25, 1)]
    views = [x for x in model.seen if x.shape[0] == 25]
    assert len(views) == len(CONSISTENCY_FACTORS)
    for view, factor in zip(views, CONSISTENCY_FACTORS, strict=True):
        assert torch.equal(view, canvas_rescale(chosen, factor).clamp(0, 1)), factor
