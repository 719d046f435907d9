"""methods/common.py: the shared init, fold, head, pools, blocks and passes do what the models
rely on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.common import (
    BlockStackNet,
    MaxOverScales,
    PreActWideBlock,
    PreActWRN,
    WideBlock,
    fold_scale_axis,
    init_norms_and_linear_biases,
    mnist_head,
    wrn_blocks_per_group,
    wrn_groups,
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
    assert mnist_head(7, 16, 10, 0.5, first_bias=True)[0].bias.shape == (16,)


def test_max_over_scales_takes_the_max_and_routes_tied_gradients_as_asked():
    x = torch.tensor([1.0, 3.0, 3.0, -2.0]).view(1, 1, 4, 1, 1)
    for share in (False, True):
        xs = x.clone().requires_grad_()
        y = MaxOverScales(share_ties=share)(xs)
        assert y.shape == (1, 1, 1, 1) and y.item() == 3.0
        y.sum().backward()
        g = xs.grad.flatten().tolist()
        assert g[0] == g[3] == 0.0 and g[1] + g[2] == 1.0
        # shared: half to each tied scale; not shared: all of it to one of them
        assert sorted(g[1:3]) == ([0.5, 0.5] if share else [0.0, 1.0])


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


def test_wide_block_builds_a_shortcut_only_where_the_shape_changes():
    conv = lambda c_in, c_out, stride: nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)  # noqa: E731
    assert WideBlock(4, 4, 1, 0.0, conv).shortcut is None
    for c_out, stride in ((6, 1), (4, 2)):
        block = WideBlock(4, c_out, stride, 0.0, conv)
        assert isinstance(block.shortcut, nn.Conv2d) and block.shortcut.stride == (stride, stride)
        assert block.conv1.stride == (stride, stride) and block.conv2.stride == (1, 1)
        assert block.eval()(torch.randn(2, 4, 8, 8)).shape == (2, c_out, 8 // stride, 8 // stride)


def test_shortcut_first_changes_neither_the_output_nor_the_gradient_beyond_rounding():
    conv = lambda c_in, c_out, stride: nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)  # noqa: E731
    torch.manual_seed(0)
    late = WideBlock(3, 5, 2, 0.0, conv)
    early = WideBlock(3, 5, 2, 0.0, conv, shortcut_first=True)
    early.load_state_dict(late.state_dict())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    outs, grads = [], []
    for block in (late.double(), early.double()):
        xs = x.clone().requires_grad_()
        y = block(xs)
        y.square().sum().backward()
        outs.append(y.detach())
        grads.append(xs.grad)
    assert torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_wrn_groups_follow_the_wrn_widths_and_strides():
    with pytest.raises(ValueError):
        wrn_blocks_per_group(15)
    n = wrn_blocks_per_group(16)
    assert n == 2
    calls = []
    groups = wrn_groups((1, 2, 3, 4), n, lambda *a: calls.append(a) or nn.Identity())
    assert [len(g) for g in groups] == [2, 2, 2]
    assert calls == [(0, 0, 1, 2, 1), (0, 1, 2, 2, 1), (1, 0, 2, 3, 2), (1, 1, 3, 3, 1),
                     (2, 0, 3, 4, 2), (2, 1, 4, 4, 1)]


class _Stack(BlockStackNet):
    def __init__(self, lift: bool, project: bool):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 3, 3, padding=1)])
        if lift:
            self.lift = nn.Conv2d(1, 1, 1)
        if project:
            self.project = nn.Conv2d(3, 3, 1)
        self.head = nn.Linear(3, 4)


def test_block_stack_applies_lift_and_projection_and_reports_the_projection():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 6)
    for lift in (False, True):
        for project in (False, True):
            net = _Stack(lift, project)
            h = net.lift(x) if lift else x
            b1 = net.blocks[0](h)
            b2 = net.blocks[1](b1)
            last = net.project(b2) if project else b2
            feats = net.features(x)
            assert list(feats) == ["block1", "block2"] + (["proj"] if project else [])
            torch.testing.assert_close(feats["block2"], b2)
            if project:
                torch.testing.assert_close(feats["proj"], last)
            torch.testing.assert_close(net(x), net.head(last.amax((-2, -1))))


class _WRN(PreActWRN):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        conv = lambda c_in, c_out, stride: nn.Conv2d(c_in, c_out, 3, stride, 1)  # noqa: E731
        self.groups = wrn_groups((2, 3, 4, 5), 1, lambda g, i, c_in, c_out, stride: WideBlock(
            c_in, c_out, stride, 0.0, conv))
        self.bn = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5, 3)


def test_pre_activation_wrn_features_and_head_read_the_same_final_map():
    torch.manual_seed(0)
    net = _WRN().eval()
    x = torch.randn(2, 1, 12, 12)
    feats = net.features(x)
    assert list(feats) == ["stem", "group1", "group2", "group3", "proj"]
    assert feats["group3"].shape == (2, 5, 3, 3)
    torch.testing.assert_close(feats["proj"], F.relu(net.bn(feats["group3"])))
    torch.testing.assert_close(net(x), net.fc(feats["proj"].mean((-2, -1))))
