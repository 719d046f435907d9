"""Per-size BatchNorm statistics (``bench.precise_bn``) and the recalibrated metrics of
``bench.evaluate`` under native input, on a toy model whose statistics differ by size.

The toy model reads one number per image, the mean grey level, after adding an offset
that grows as the image shrinks (as border effects shift a real CNN's activations at
small sizes) and normalising it with BatchNorm; it answers class 1 when the normalised
value is positive. Trained on two sizes at once, its running mean sits between the two
sizes' means, so at each size it answers one class for every image (50 %); with the
statistics of each size it separates the classes exactly.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from scaleqbench.bench.run.evaluate import (
    evaluate,
    predict,
    predict_tensor,
    recalibrated_predictions,
    recalibration_applies,
)
from scaleqbench.bench.run.precise_bn import batchnorm_layers, recalibrated
from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.datasets.splits import ScaledDataset, Split

N = 16
SIZES = (8, 16)
CPU = torch.device("cpu")


class ToyBN(nn.Module):
    """Mean grey level + (N - size), BatchNorm, then the sign as the class."""

    def __init__(self, norm: bool = True):
        super().__init__()
        self.norm = nn.BatchNorm2d(1, affine=False) if norm else nn.Identity()
        self.drop = nn.Dropout(0.5)  # must stay in eval mode while BN statistics are estimated

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"norm": self.norm(x + (N - x.shape[-1]))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.drop(self.features(x)["norm"]).mean((1, 2, 3))
        return torch.stack([-z, z], 1)


def _split(n: int, g: torch.Generator, sizes=SIZES) -> Split:
    labels = torch.arange(n) % 2
    # grey +-1 by class plus noise; band-limited so that every size holds the same image
    full = (2.0 * labels - 1).view(-1, 1, 1, 1) + 0.3 * torch.randn(n, 1, N, N, generator=g)
    full = fourier_resize(fourier_resize(full.double(), 6), N).float()
    assign = torch.tensor([sizes[(i // 2) % len(sizes)] for i in range(n)])
    images, labs, index = {}, {}, {}
    for s in sizes:
        pos = (assign == s).nonzero().flatten()
        images[s] = fourier_resize(full[pos].double(), s).float()
        labs[s], index[s] = labels[pos], pos
    return Split(images, labs, index, full, labels, assign.float())


def toy_dataset(train_sizes=SIZES) -> ScaledDataset:
    g = torch.Generator().manual_seed(0)
    return ScaledDataset(
        name="toy", protocol="toy", source="hand-made", seed=0, in_channels=1, num_classes=2,
        full_size=N, sizes=SIZES, scale_kind="size", consistency=("fourier", SIZES),
        eq_sizes=(8,), augment=None, train=_split(200, g, train_sizes),
        val=_split(40, g, train_sizes), test=_split(120, g))


def trained(model: ToyBN, ds: ScaledDataset) -> ToyBN:
    """Running statistics as training leaves them: batches of every training size, in turn."""
    model.train()
    with torch.no_grad():
        for _ in range(30):
            for s in ds.train.sizes:
                model(ds.train.images[s])
    return model.eval()


def state(model: nn.Module) -> tuple[dict, list, list]:
    return (copy.deepcopy(model.state_dict()), [m.training for m in model.modules()],
            [bn.momentum for bn in batchnorm_layers(model)])


def same_state(a, b) -> bool:
    return (a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
            and a[1:] == b[1:])


def test_statistics_averaged_over_sizes_fail_and_per_size_statistics_restore_accuracy():
    ds = toy_dataset()
    model = trained(ToyBN(), ds)
    out = evaluate(model, ds, CPU, eq_images=4, input="native")
    # the plain accuracy is the artefact: one class per size
    assert out["per_size_acc"] == {"8": 0.5, "16": 0.5}
    assert out["scale_consistency"] == 0.0  # every image flips class between the sizes
    assert out["per_size_acc_recal"] == {"8": 1.0, "16": 1.0}
    assert out["test_acc_recal"] == 1.0 and out["scale_consistency_recal"] == 1.0
    assert out["bn_recal"] == {"images": 200, "sizes": [8, 16]}


def test_evaluation_leaves_the_model_state_unchanged():
    ds = toy_dataset()
    model = trained(ToyBN(), ds)
    before = state(model)
    evaluate(model, ds, CPU, eq_images=4, input="native")  # leaves the model in eval mode
    assert same_state(before, state(model))
    model.drop.train()  # a mixed mode comes back as it was from the recalibration
    before = state(model)
    with recalibrated(model, ds.train.images[8], CPU):
        assert not model.drop.training
    assert same_state(before, state(model))
    with pytest.raises(RuntimeError, match="inside"):
        with recalibrated(model, ds.train.images[8], CPU):
            raise RuntimeError("inside")
    assert same_state(before, state(model))  # restored on an exception too


def test_statistics_come_from_the_given_size_with_every_image_weighted_alike():
    ds = toy_dataset()
    model = trained(ToyBN(), ds)
    images = ds.train.images[8][:101]  # an odd count: two near-equal batches
    with recalibrated(model, images, CPU, batch_size=64):
        bn = model.norm
        values = images + (N - 8)
        assert not bn.training and not model.drop.training
        torch.testing.assert_close(bn.running_mean, values.mean().view(1), rtol=0, atol=1e-5)
        # the cumulative average of the two batches' unbiased variances
        halves = torch.tensor_split(values, 2)
        var = torch.stack([h.var() for h in halves]).mean()
        torch.testing.assert_close(bn.running_var, var.view(1), rtol=1e-5, atol=1e-6)


def test_models_without_batch_statistics_are_unchanged():
    ds = toy_dataset()
    model = ToyBN(norm=False).eval()
    before = state(model)
    assert not recalibration_applies(model, ds, "native")
    out = evaluate(model, ds, CPU, eq_images=4, input="native")
    assert "test_acc_recal" not in out and "per_size_acc_recal" not in out
    # and were it asked to, recalibrating would change none of its predictions
    plain = predict(model, ds.test, 64, CPU)
    views = torch.stack([predict_tensor(model, fourier_resize(ds.test.full.double(), s).float(),
                                        64, CPU) for s in SIZES])
    preds, views_r, _ = recalibrated_predictions(model, ds, CPU, plain, views)
    assert torch.equal(preds, plain) and torch.equal(views_r, views)
    assert same_state(before, state(model))


def test_recalibration_only_under_native_input_on_several_sizes():
    ds = toy_dataset()
    model = trained(ToyBN(), ds)
    assert recalibration_applies(model, ds, "native")
    for policy in ("pad", "upsample"):
        assert not recalibration_applies(model, ds, policy)
        assert "test_acc_recal" not in evaluate(model, ds, CPU, eq_images=4, input=policy)


def test_a_size_without_training_images_keeps_the_trained_statistics():
    ds = toy_dataset(train_sizes=(16,))  # scale generalisation: trained at 16 only
    model = trained(ToyBN(), ds)
    out = evaluate(model, ds, CPU, eq_images=4, input="native")
    assert out["bn_recal"]["sizes"] == [16]
    assert out["per_size_acc_recal"]["8"] == out["per_size_acc"]["8"]
    assert out["per_size_acc_recal"]["16"] == 1.0
