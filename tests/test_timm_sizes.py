"""Any timm model as a baseline, at every size of a dataset's range: fixed-size models
(vision transformers, Swin) are built for a small or dynamic image size."""

from __future__ import annotations

import pytest
import torch

from scaleqbench import methods
from scaleqbench.bench.cli.method_options import check_method_options


@pytest.mark.parametrize("name, fixed", [("timm:vit_tiny_patch16_224", None),
                                         ("timm:swin_tiny_patch4_window7_224", 32),
                                         ("timm:resnet18", None)])
def test_a_timm_model_classifies_every_size_of_the_range(name, fixed):
    torch.manual_seed(0)
    model = methods.create(name).eval()
    assert model.fixed_size == fixed
    for size in (8, 15, 28, 49, 97):
        x = torch.randn(2, 1, size, size)
        assert model(x).shape == (2, 10)
        maps = model.features(x)
        assert maps and all(m.dim() == 4 and m.shape[0] == 2 for m in maps.values())


def test_the_trial_build_accepts_a_vision_transformer():
    # bench run's check before anything is written: builds and classifies at the full size
    check_method_options([("timm:vit_tiny_patch16_224", {"drop_rate": 0.1})], "quick", size=28)
    check_method_options([("timm:vit_tiny_patch16_224", {})], "quick", size=97)


def test_a_size_given_by_the_user_is_theirs():
    model = methods.create("timm:vit_tiny_patch16_224", img_size=64)
    assert model.fixed_size == 64
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)
