"""methods/common.py: the shared init, fold, head and block passes do what the models rely on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.common import (
    PreActWideBlock,
    fold_scale_axis,
    init_norms_and_linear_biases,
    mnist_head,
)


def test_init_sets_named_norms_and_linear_biases_and_nothing_else():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.BatchNorm1d(3),
                          nn.Linear(3, 4))
    for p in model.parameters():
        nn.init.uniform_(p, 2.0, 3.0)
    conv, linear_w, bn1d_w = (model[0].weight.clone(), model[3].weight.clone(),
                              model[2].weight.clone())
    init_norms_and_linear_biases(model, (nn.BatchNorm2d,))
    assert torch.equal(model[1].weight, torch.ones(3)) and torch.equal(model[1].bias, torch.zeros(3))
    assert torch.equal(model[3].bias, torch.zeros(4))
    # not named: BatchNorm1d; never touched: conv and Linear weights
    assert torch.equal(model[2].weight, bn1d_w)
    assert torch.equal(model[0].weight, conv) and torch.equal(model[3].weight, linear_w)


def test_fold_is_channel_major_and_leaves_plain_maps_alone():
    x = torch.arange(2 * 3 * 4 * 5 * 5, dtype=torch.float32).reshape(2, 3, 4, 5, 5)
    folded = fold_scale_axis(x)
    assert folded.shape == (2, 12, 5, 5) and torch.equal(folded[:, 2 * 4 + 1], x[:, 2, 1])
    plain = torch.rand(2, 3, 5, 5)
    assert fold_scale_axis(plain) is plain


def test_mnist_head_has_a_biasless_first_linear():
    head = mnist_head(7, 16, 10, 0.5)
    assert head[0].bias is None and head[-1].out_features == 10
    assert head.eval()(torch.rand(3, 7)).shape == (3, 10)


class _Block(PreActWideBlock):
    def __init__(self, c_in: int, c_out: int, dropout: float):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None
        self.dropout = dropout


def test_pre_activation_block_adds_the_shortcut_of_the_pre_activated_input():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6)
    for c_out in (3, 5):
        block = _Block(3, c_out, 0.3).eval()  # eval: dropout off
        pre = F.relu(block.bn1(x))
        body = block.conv2(F.relu(block.bn2(block.conv1(pre))))
        skip = x if block.shortcut is None else block.shortcut(pre)
        assert torch.allclose(block(x), body + skip)
