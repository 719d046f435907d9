"""What the registry knows about a method: its card (who made it, how figures draw it, how its
paper fed it images) and its entry (the card, the builder and the configurations).

A :class:`MethodCard` is written once per method, beside its model (``methods/<family>/``);
the configurations (``mnist``, ``stl10``, ``quick``: the builder's keyword arguments) sit
beside it too, as timm keeps its pretrained configurations beside each model. How a method
is *trained* (its recipe and loss) is no part of either: the models package holds models
only, and the harness keeps every recipe in :mod:`scaleqbench.bench.run.recipes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from scaleqbench.datasets.scaling import INPUT_POLICIES
from scaleqbench.methods.style import MethodStyle

__all__ = ["BUILTIN", "MethodCard", "MethodEntry", "UnknownConfigError", "UnknownMethodError"]

#: the source of the methods that ship with scaleqbench (a plugin's is "<distribution> <version>")
BUILTIN = "builtin"


class UnknownMethodError(KeyError):
    """A method name that is not registered (the message lists the valid names)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class UnknownConfigError(KeyError):
    """A configuration name a method does not define."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class MethodCard:
    """A method's provenance, figure style and input policy.

    ``family`` groups methods (``baseline``, ``scale-equivariant``, ...; figures colour
    some families alike); ``paper`` and ``year`` cite the publication; ``reference`` is
    the authors' public implementation the method is checked against, as
    ``"owner/repo@commit:path"``; ``description`` is one line (left empty, the builder's
    docstring gives it). ``style`` is how figures draw the method (see
    :mod:`methods.style`; None: derived from its name and family). ``input`` is how its
    paper fed it an image smaller than the canvas of a multi-resolution protocol:
    ``pad`` (zero-padded onto the canvas, as the baselines of Rahman & Yeh 2023 were),
    ``upsample``, or ``native`` for a method built for any size; the ``published``
    input policy of ``bench run`` gives each method its own.
    """

    family: str
    paper: str = ""
    year: int | None = None
    reference: str = ""
    description: str = ""
    style: MethodStyle | None = None
    input: str = "pad"

    def __post_init__(self) -> None:
        if not self.family:
            raise ValueError("a method card needs a family")
        if self.input not in INPUT_POLICIES:
            raise ValueError(f"input must be one of {', '.join(INPUT_POLICIES)}, "
                             f"got {self.input!r}")


def _card_field(name: str) -> property:
    """A read-only attribute of an entry that reads the same field of its card."""
    return property(lambda entry: getattr(entry.card, name),
                    doc=f"``entry.card.{name}``")


@dataclass(frozen=True)
class MethodEntry:
    """One registered method: its card, its builder and its configurations.

    ``builder(in_channels, num_classes, **kwargs)`` returns a model following
    :class:`methods.protocol.ScaleModel`; ``configs`` maps configuration names to the
    builder's keyword arguments. ``source`` is ``"builtin"``, ``"timm"``, the plugin's
    ``"<distribution> <version>"``, or the module of a method registered by a script.
    ``alias_of`` names the method this one is a second name of (``dss_vector`` for
    ``dss``): it resolves as usual, but ``--methods all`` runs the model once.
    """

    name: str
    builder: Callable[..., nn.Module]
    card: MethodCard
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = BUILTIN
    alias_of: str | None = None

    def config(self, name: str) -> dict[str, Any]:
        """The builder's keyword arguments of configuration ``name`` (a fresh dict)."""
        if name not in self.configs:
            raise UnknownConfigError(
                f"method {self.name!r} has no config {name!r}; it defines: {', '.join(self.configs)}")
        return dict(self.configs[name])

    # shortcuts: ``entry.family`` is ``entry.card.family`` (listings and reports read these)
    family = _card_field("family")
    paper = _card_field("paper")
    year = _card_field("year")
    reference = _card_field("reference")
    description = _card_field("description")
    style = _card_field("style")
    input = _card_field("input")
