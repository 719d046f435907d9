"""The Fourier method's training loss: cross-entropy at every size plus a scale-consistency term.

``loss = sum_i CE_i + w * sum_i max(CE_i - CE_{i-1}, 0)`` over the per-size logits
(``i`` increasing feature size, ``w`` the model's ``consistency_weight``): every
size is trained to classify, and the loss may not grow from one size to the next
larger one (Rahman & Yeh 2023, Sec. 5). Returns the prediction at the input's
size for the training accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scaleqbench.methods.protocol import PerSizeClassifier

__all__ = ["per_size_cross_entropy", "scale_consistency_loss"]


def per_size_cross_entropy(per_size: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(S,)``: the batch-mean cross-entropy of each size's logits ``per_size (B, S, K)``."""
    b, s, _ = per_size.shape
    ce = F.cross_entropy(per_size.transpose(1, 2), y[:, None].expand(b, s), reduction="none")
    return ce.mean(0)


def scale_consistency_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss of ``fourier``: ``(loss, logits at the input size)``."""
    if not isinstance(model, PerSizeClassifier):
        raise TypeError(f"the scale-consistency loss needs a model with per_size_logits() and "
                        f"consistency_weight, not a {type(model).__name__}")
    per_size = model.per_size_logits(x)
    ce = per_size_cross_entropy(per_size, y)
    weight = float(model.consistency_weight)
    loss = ce.sum() + weight * torch.relu(ce[1:] - ce[:-1]).sum()
    return loss, per_size[:, -1].detach()
