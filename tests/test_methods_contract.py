"""The model protocol, checked for every registered method's quick config."""

from __future__ import annotations

import pytest
import torch

from scalebench import methods

MNIST_SIZES = list(range(8, 29))


@pytest.fixture(scope="module", params=methods.list_methods())
def quick_model(request):
    torch.manual_seed(0)
    return request.param, methods.create(request.param, config="quick")


def test_forward_at_every_size(quick_model):
    name, model = quick_model
    model.eval()
    with torch.no_grad():
        for size in MNIST_SIZES:
            out = model(torch.rand(2, 1, size, size))
            assert out.shape == (2, 10), f"{name} at {size}"
            assert torch.isfinite(out).all()


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


def test_one_step_lowers_the_loss(quick_model):
    name, model = quick_model
    entry = methods.get_method(name)
    loss_fn = entry.loss_fn()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 1, 20, 20, generator=g), torch.randint(0, 10, (16,), generator=g)
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
