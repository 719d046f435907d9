"""``timm:<model-name>``: any timm model as a generic (non-equivariant) baseline.

``in_chans`` and ``num_classes`` are passed through to ``timm.create_model``
(never pretrained: no weights are downloaded). Inputs smaller than
``min_size`` are up-sampled to it by :func:`datasets.scaling.fourier_resize`,
which adds no frequencies, so that ImageNet-style stems with a large total
stride still see a non-degenerate map. ``features()`` uses timm's
``forward_intermediates`` (every timm model family that supports it).

Models built for one input size (vision transformers and their kin) are asked for
``img_size=min_size`` with ``dynamic_img_size`` (and ``dynamic_img_pad``), so that every
size of a dataset's range reaches them; a model that takes ``img_size`` but no dynamic
size gets every input resized to its one size. A model that accepts neither builds as
timm makes it, and a size it cannot take is refused by the trial build of ``bench``.

Importing this module registers the ``timm:`` prefix with the registry; timm
itself is imported only when a ``timm:`` name is looked up or built, because
importing it costs seconds and most runs never use it.
"""

from __future__ import annotations

import torch
from torch import nn

from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.methods.method_card import MethodCard, MethodEntry, UnknownMethodError
from scaleqbench.methods.registry import register_prefix
from scaleqbench.methods.suggest import did_you_mean

PREFIX = "timm:"
FAMILY = "baseline"


class TimmBaseline(nn.Module):
    """A timm classifier behind the model protocol (:class:`methods.protocol.ScaleModel`)."""

    def __init__(self, model_name: str, in_channels: int = 1, num_classes: int = 10,
                 min_size: int = 32, **timm_kwargs):
        super().__init__()
        import timm  # lazily: see the module docstring

        if not timm.is_model(model_name):
            raise UnknownMethodError(_unknown_model(model_name))
        self.model_name = model_name
        self.min_size = min_size
        self.model, self.fixed_size = _create(timm, model_name, min_size, dict(
            pretrained=False, in_chans=in_channels, num_classes=num_classes, **timm_kwargs))

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed_size is not None and x.shape[-1] != self.fixed_size:
            return fourier_resize(x, self.fixed_size)
        return fourier_resize(x, self.min_size) if x.shape[-1] < self.min_size else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._prepare(x))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not hasattr(self.model, "forward_intermediates"):
            raise NotImplementedError(
                f"timm model {self.model_name!r} has no forward_intermediates; "
                "its equivariance error cannot be measured")
        maps = self.model.forward_intermediates(self._prepare(x), intermediates_only=True)
        return {f"stage{i + 1}": m for i, m in enumerate(maps) if m.dim() == 4}


def _create(timm, model_name: str, min_size: int, kwargs: dict) -> tuple[nn.Module, int | None]:
    """The timm model and the one input size it needs (None: any size from ``min_size``).

    Tries a dynamic image size first, then a fixed ``img_size``, then timm's defaults; a
    model whose constructor does not take a keyword raises ``TypeError``, the next try.
    """
    if "img_size" in kwargs or "dynamic_img_size" in kwargs:  # the user chose
        fixed = kwargs.get("img_size") if not kwargs.get("dynamic_img_size") else None
        return timm.create_model(model_name, **kwargs), fixed
    tries = (({"img_size": min_size, "dynamic_img_size": True, "dynamic_img_pad": True}, None),
             ({"img_size": min_size}, min_size))
    for extra, fixed in tries:
        try:
            return timm.create_model(model_name, **kwargs, **extra), fixed
        except TypeError:
            continue
    return timm.create_model(model_name, **kwargs), None


def _unknown_model(model_name: str) -> str:
    """One line for a name timm does not know: the closest name (a typo), else names that
    contain it."""
    import timm

    # stricter than the registry's hint: among timm's many similar names a loose match misleads
    hint = did_you_mean(model_name, timm.list_models(), cutoff=0.75,
                        spell=lambda name: f"{PREFIX}{name}")
    if hint:
        return f"timm has no model {model_name!r}{hint}"
    similar = timm.list_models(f"*{model_name}*")[:5]
    return f"timm has no model {model_name!r}" + (
        f"; similar: {', '.join(similar)}" if similar else "; see timm.list_models()")


def timm_entry(model_name: str) -> MethodEntry:
    """A registry entry, made on demand, for ``timm:<model_name>``."""

    def build(in_channels: int = 1, num_classes: int = 10, **kwargs) -> TimmBaseline:
        return TimmBaseline(model_name, in_channels=in_channels, num_classes=num_classes, **kwargs)

    # validate eagerly so that `bench run --methods timm:typo` fails before any work
    import timm  # lazily: see the module docstring
    if not timm.is_model(model_name):
        TimmBaseline(model_name)
    card = MethodCard(family=FAMILY, paper="timm (Wightman)",
                      description=f"timm model {model_name}")
    return MethodEntry(name=f"{PREFIX}{model_name}", builder=build, card=card,
                       configs={"mnist": {}, "stl10": {}, "quick": {}}, source="timm")


register_prefix(PREFIX, timm_entry, family=FAMILY, hint=f"{PREFIX}<model-name>")
