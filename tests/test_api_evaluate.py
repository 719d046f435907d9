"""The library API's ``evaluate``: it measures any model of the protocol as a run does. A
trained run's model gives its record's numbers, a model of known behaviour gives the values
that behaviour implies, ``sizes`` narrows every measurement, and wrong arguments are named.
"""

from __future__ import annotations

import math

import pytest
import torch

import scaleqbench.bench as sb

# experiment: a fixture, found by pytest under this name
from api_support import _record_file, experiment


# --- evaluate -----------------------------------------------------------------------------------

def test_evaluate_gives_the_numbers_the_run_recorded(experiment):
    from scaleqbench.bench.run.train import prepare_data

    model, record = sb.load_run(_record_file(experiment).stem, experiment)
    data, _ = prepare_data(record.spec)  # the run's own dataset and test subset
    scores = sb.evaluate(model, data, input=record.input, eq_images=record.spec.eq_images,
                         seed=record.seed)
    assert scores["test_images"] == len(data.test) and scores["input"] == record.input
    assert scores["test_acc"] == record.test_acc
    assert scores["per_size_acc"] == {int(k): v for k, v in record.per_size_acc.items()}
    assert scores["scale_consistency"] == record.scale_consistency
    for key in ("eq_err", "logit_inv_err", "eq_err_scale_shift"):
        assert scores[key] == pytest.approx(getattr(record, key), rel=1e-9), key
    ideal = scores["equivariance"]["ideal"].nested()
    for layer, per_size in record.equivariance_error.items():
        assert {str(s): v for s, v in ideal[layer].items()} == pytest.approx(per_size, rel=1e-9)


class _Constant(torch.nn.Module):
    """Predicts class ``k`` whatever it sees; its one feature map is the image itself."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.k = k
        self.register_buffer("anchor", torch.zeros(()))  # where the model is

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": x}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((x.shape[0],), self.k), 10).float()


def test_evaluate_gives_what_a_known_model_implies(mnist_res):
    """A constant classifier is right exactly on its class, consistent on every image and
    invariant; the identity map is exactly equivariant under the ideal operator."""
    model = _Constant(3).train()
    scores = sb.evaluate(model, mnist_res, eq_images=16)
    labels, size = mnist_res.test.full_labels, mnist_res.test.scale
    assert scores["test_images"] == len(mnist_res.test) and scores["sizes"] == list(range(8, 29))
    assert scores["test_acc"] == pytest.approx((labels == 3).double().mean().item(), abs=1e-15)
    for s, acc in scores["per_size_acc"].items():
        assert acc == pytest.approx((labels[size == s] == 3).double().mean().item(), abs=1e-15)
    assert scores["scale_consistency"] == 1.0 and scores["logit_inv_err"] == 0.0
    assert scores["eq_err"] < 1e-12 and scores["eq_err_scale_shift"] == scores["eq_err"]
    assert "test_acc_recal" not in scores  # no BatchNorm: nothing to re-estimate
    assert model.training  # measured in eval mode, left as it was


def test_evaluate_narrows_every_measurement_to_the_sizes(mnist_res):
    torch.manual_seed(0)
    cnn = sb.create("cnn", config="quick")
    full = sb.evaluate(cnn, mnist_res, eq_images=8, recal_images=0, operators=[])
    some = sb.evaluate(cnn, mnist_res, sizes=[28, 8, 16], eq_images=8, recal_images=0,
                       operators="bicubic")
    counts = mnist_res.test.size_histogram()
    assert some["sizes"] == [8, 16, 28] and some["test_images"] == sum(counts[s]
                                                                       for s in (8, 16, 28))
    assert some["per_size_acc"] == {s: full["per_size_acc"][s] for s in (8, 16, 28)}
    weighted = sum(some["per_size_acc"][s] * counts[s] for s in (8, 16, 28))
    assert weighted / some["test_images"] == pytest.approx(some["test_acc"], abs=1e-12)
    assert list(some["equivariance"]) == ["bicubic"]
    assert some["equivariance"]["bicubic"].sizes == (8, 16)  # those below the full size
    assert math.isnan(some["eq_err"]) and full["equivariance"] == {}
    sub = sb.evaluate(cnn, mnist_res, sizes=[8, 16], test_images=50, operators=[])
    assert sub["test_images"] == 50 and sub["sizes"] == [8, 16]


def test_evaluate_on_a_one_size_protocol_sets_the_equivariance_sizes(mnist_scale):
    scores = sb.evaluate(_Constant(1), mnist_scale, sizes=[14, 20], test_images=60,
                         eq_images=4, operators="ideal")
    assert scores["equivariance"]["ideal"].sizes == (14, 20) and scores["test_images"] == 60
    assert all("-" in k for k in scores["per_size_acc"])  # scale bins, as a run keys them
    with pytest.raises(ValueError, match="from 1 to 27"):
        sb.evaluate(_Constant(1), mnist_scale, sizes=[28])


@pytest.mark.parametrize("kwargs, message", [
    ({"sizes": [8, 29]}, "no test images of size 29; its sizes are 8, 9"),
    ({"sizes": ["8"]}, "sizes must be integers"),
    ({"operators": ["ideal", "idael"]}, "'idael'"),
    ({"input": "padded"}, "unknown input policy 'padded'"),
    ({"test_images": 0}, "test_images must be a positive integer"),
])
def test_evaluate_names_a_wrong_argument(mnist_res, kwargs, message):
    with pytest.raises(ValueError) as info:
        sb.evaluate(_Constant(), mnist_res, **kwargs)
    assert message in str(info.value)


def test_evaluate_needs_the_model_protocol(mnist_res):
    with pytest.raises(TypeError, match="features"):
        sb.evaluate(torch.nn.Linear(4, 10), mnist_res)
