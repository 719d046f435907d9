"""Per-size batch statistics ("precise BN"): judge a BatchNorm model at each size on its own
statistics, not on running averages over every training size.

A model trained on several input sizes at once keeps one running mean and
variance per BatchNorm channel, averaged over all of them. At a small size the
activations have other statistics (less context per pixel, a larger share of
border), so an input seen *natively* at that size is normalised wrongly, and the
model is judged on an artefact of how its statistics were stored rather than
on what it learned. :func:`recalibrated` re-estimates them on training images of
one size (a few hundred), the standard remedy (Wu & Johnson 2021, "Rethinking
'Batch' in BatchNorm": precise BN): every BatchNorm layer, and nothing else, in
train mode, running statistics reset, ``momentum=None`` (a cumulative average,
so every image weighs the same), no gradients. On leaving the block the model's
state (weights, running statistics, counters, momenta, train/eval flags) is
exactly what it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["batchnorm_layers", "recalibrated"]


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics (1d, 2d, 3d, sync)."""
    return [m for m in model.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats]


@contextmanager
def recalibrated(model: nn.Module, images: torch.Tensor, device: torch.device,
                 batch_size: int = 128) -> Iterator[nn.Module]:
    """``model`` in eval mode with BatchNorm statistics estimated on ``images``, inside the block.

    ``images`` ``(n, C, s, s)`` are training images of one size, as the model sees them.
    A model without BatchNorm is yielded unchanged (in eval mode). The statistics are
    restored however the block is left.
    """
    layers = batchnorm_layers(model)
    modes = {m: m.training for m in model.modules()}
    saved = [(bn.momentum, {k: v.detach().clone() for k, v in bn.state_dict().items()
                            if k in ("running_mean", "running_var", "num_batches_tracked")})
             for bn in layers]
    try:
        model.eval()
        if layers and images.shape[0] > 0:
            for bn in layers:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average over the batches below
                bn.train()
            # near-equal batches: the cumulative average weighs every batch alike, so every
            # image weighs alike too (and no batch is a single image, which BN cannot normalise)
            chunks = -(-images.shape[0] // batch_size)
            with torch.no_grad():
                for batch in torch.tensor_split(images, chunks):
                    model(batch.to(device))
            for bn in layers:
                bn.eval()
        yield model
    finally:
        for bn, (momentum, buffers) in zip(layers, saved):
            bn.momentum = momentum
            for name, value in buffers.items():
                getattr(bn, name).copy_(value)
        for m, training in modes.items():
            m.train(training)
