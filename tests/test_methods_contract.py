"""The model protocol (methods/protocol.py), checked once for every registered method (plugins
included).

Per method, at its quick config: it is a ``ScaleModel``, logits at every MNIST size,
spatial feature maps, the scale axes it declares, a gradient for every parameter, and
one optimisation step that lowers the method's own loss; at its published MNIST
config: the smallest and largest sizes. Family tests (tests/test_*_models.py) check
what is particular to a family, not these.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scaleqbench import methods
from scaleqbench.bench.run.recipes import loss_for
from scaleqbench.methods.protocol import (
    HasScaleAxes,
    HoldsWorkspace,
    PerSizeClassifier,
    ScaleModel,
)
from scaleqbench.methods.scale_axis import ScaleAxis, scale_axes_of

MNIST_SIZES = list(range(8, 29))


@pytest.fixture(scope="module", params=methods.list_methods())
def quick_model(request):
    torch.manual_seed(0)
    return request.param, methods.create(request.param, config="quick")


def _batch(n: int = 16, size: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_every_model_follows_the_protocol(quick_model):
    name, model = quick_model
    assert isinstance(model, ScaleModel), name


def test_declared_scale_axes_name_feature_maps_that_fold_them(quick_model):
    name, model = quick_model
    axes = scale_axes_of(model)
    # a model declares axes through HasScaleAxes (it may declare none: sesn's scalar maps)
    assert isinstance(model, HasScaleAxes) or not axes, name
    if not axes:
        return
    model.eval()
    with torch.no_grad():
        feats = model.features(torch.rand(2, 1, 28, 28))
    for layer, axis in axes.items():
        assert isinstance(axis, ScaleAxis) and layer in feats, (name, layer)
        assert feats[layer].shape[1] % axis.size == 0, (name, layer)


def test_forward_at_every_size(quick_model):
    name, model = quick_model
    model.eval()
    with torch.no_grad():
        for size in MNIST_SIZES:
            out = model(torch.rand(2, 1, size, size))
            assert out.shape == (2, 10), f"{name} at {size}"
            assert torch.isfinite(out).all(), f"{name} at {size}"


def test_features_are_spatial_maps(quick_model):
    name, model = quick_model
    model.eval()
    with torch.no_grad():
        for size in (8, 17, 28):
            feats = model.features(torch.rand(2, 1, size, size))
            assert feats, name
            for layer, f in feats.items():
                assert f.dim() == 4 and f.shape[0] == 2 and f.shape[-1] == f.shape[-2], layer
                assert 1 <= f.shape[-1] <= size
                assert torch.isfinite(f).all(), layer


def test_every_parameter_gets_a_gradient(quick_model):
    name, model = quick_model
    x, y = _batch()
    model.train()
    model.zero_grad(set_to_none=True)
    loss, _ = loss_for(name, "quick")(model, x, y)
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params, f"{name} has no trainable parameters"
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing}"
    broken = [n for n, p in params if not torch.isfinite(p.grad).all()]
    assert not broken, f"{name}: non-finite gradient in {broken}"
    # a dead unit may leave a small tensor without signal on one batch; most must have one
    zero = [n for n, p in params if not p.grad.abs().sum() > 0]
    assert len(zero) <= 0.1 * len(params), f"{name}: all-zero gradient in {zero}"
    model.zero_grad(set_to_none=True)


def test_one_step_lowers_the_loss(quick_model):
    name, model = quick_model
    loss_fn = loss_for(name, "quick")
    x, y = _batch()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    torch.manual_seed(1)  # the same dropout masks before and after the step
    before, _ = loss_fn(model, x, y)
    opt.zero_grad()
    before.backward()
    opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        after, _ = loss_fn(model, x, y)
    assert after < before, f"{name}: {before.item():.4f} -> {after.item():.4f}"


@pytest.mark.parametrize("name", methods.list_methods(aliases=False))
def test_published_mnist_config_runs_at_the_extreme_sizes(name):
    torch.manual_seed(0)
    model = methods.create(name).eval()  # the default config: the published MNIST one
    with torch.no_grad():
        for size in (MNIST_SIZES[0], MNIST_SIZES[-1]):
            out = model(torch.rand(2, 1, size, size))
            assert out.shape == (2, 10) and torch.isfinite(out).all(), f"{name} at {size}"


class _LogitsOnly(nn.Module):
    """A classifier without ``features()``: not a model the benchmark can measure."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class _WithAxes(_LogitsOnly):
    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"in": x}

    def scale_axes(self):
        return {"in": ScaleAxis((1.0, 2.0))}


def test_the_protocols_tell_models_apart():
    plain = _LogitsOnly()
    assert not isinstance(plain, ScaleModel)
    assert not isinstance(plain, HasScaleAxes) and scale_axes_of(plain) == {}
    lifted = _WithAxes()
    assert isinstance(lifted, ScaleModel) and isinstance(lifted, HasScaleAxes)
    assert scale_axes_of(lifted) == {"in": ScaleAxis((1.0, 2.0))}


def test_the_optional_protocols_of_the_builtin_models():
    torch.manual_seed(0)
    fourier = methods.create("fourier", config="quick")
    assert isinstance(fourier, PerSizeClassifier) and isinstance(fourier, HoldsWorkspace)
    cnn = methods.create("cnn", config="quick")
    assert not isinstance(cnn, PerSizeClassifier) and not isinstance(cnn, HoldsWorkspace)
    assert scale_axes_of(methods.create("sesn_vector", config="quick"))
    assert not isinstance(methods.create("sevf", config="quick"), HasScaleAxes)


def test_the_fourier_loss_refuses_a_model_without_per_size_logits():
    from scaleqbench.methods.fourier.loss import scale_consistency_loss

    with pytest.raises(TypeError, match="per_size_logits"):
        scale_consistency_loss(_WithAxes(), torch.rand(2, 1, 2, 2), torch.tensor([0, 1]))
