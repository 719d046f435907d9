"""The model protocol: what a method's model provides, as ``typing.Protocol`` classes.

Every builder in the registry returns an ``nn.Module`` that is a :class:`ScaleModel`;
the harness reads the optional parts through ``isinstance`` checks against the
smaller protocols below (all runtime-checkable: ``isinstance`` looks for the
members, not at their signatures, so the docstrings are the contract):

* :class:`ScaleModel` -- ``forward(x) -> logits`` and ``features(x) -> maps``;
* :class:`HasScaleAxes` -- ``scale_axes()``: which feature maps carry a discrete scale axis;
* :class:`HoldsWorkspace` -- ``empty_cache()``: the model keeps buffers between steps;
* :class:`DescribesImplementation` -- ``implementation(device)``: how it computes there;
* :class:`PerSizeClassifier` -- ``per_size_logits(x)``: one prediction per feature size
  (the Fourier network, whose loss reads them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["DescribesImplementation", "HasScaleAxes", "HoldsWorkspace", "PerSizeClassifier",
           "ScaleModel", "implementation_of"]


@runtime_checkable
class ScaleModel(Protocol):
    """An image classifier the benchmark can train, evaluate and measure.

    The symmetry contract. Let ``D_s`` be the rescaling of an image to ``s`` pixels
    (``datasets.scaling.fourier_resize``, or the dataset's own operator). A model states,
    in its docstrings, which of these it is built to satisfy -- exactly, approximately,
    or not at all (a baseline); the benchmark measures how far it is from each:

    * *invariance* of the logits: ``forward(D_s x) == forward(x)``;
    * *equivariance* of the maps: ``features(D_s x)[k] == D_s' features(x)[k]`` for every
      spatial entry ``k``, ``s'`` the map's size at the smaller input; a map that carries
      a discrete scale axis (see :class:`HasScaleAxes`) may shift along it as well.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of images ``x`` ``(B, C, H, W)``, ``H == W``, at any size in the
        dataset's range (8...28 for MNIST, 49...97 for STL-10-res), or at the canvas size
        when the input policy pads or upsamples."""
        ...

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The spatial map ``(B, C', H', W')`` after each block, in network order, by name.

        A discrete scale axis is folded into channels, ``(B, C * S, H', W')``. Entries with
        fewer than four dimensions are ignored by the metrics; the last spatial entry is
        the one the headline equivariance error reads.
        """
        ...


@runtime_checkable
class HasScaleAxes(Protocol):
    """A model some of whose feature maps carry a discrete scale axis.

    The convention of every lifted model here (SESN, DSS, DISCO): down-scaling the input
    from ``N`` to ``s`` pixels with ``N / s == sigma_j / sigma_i`` moves the content of
    slice ``j`` of ``features(x)[k]`` to slice ``i`` of ``features(D_s x)[k]``; slices
    whose partner falls off the axis have no counterpart. A model without the method
    declares no axis.
    """

    # the values are ScaleAxis objects; methods.scale_axis reads this module, so the
    # annotation cannot name that class without an import cycle
    def scale_axes(self) -> Mapping[str, Any]:
        """The ``features()`` entries that carry a scale axis, each with its
        :class:`~methods.scale_axis.ScaleAxis` (scales and how the axis is folded);
        :func:`methods.scale_axis.scale_axes_of` checks them."""
        ...


@runtime_checkable
class HoldsWorkspace(Protocol):
    """A model that keeps buffers from one step for the next (e.g. a pool of warm spectra).

    ``empty_cache()`` releases what it holds idle, so that a measurement of one step's
    memory does not count what the previous step left behind. It changes no result.
    """

    def empty_cache(self) -> None:
        ...


@runtime_checkable
class DescribesImplementation(Protocol):
    """A model that can compute one function in more than one way (e.g. a compiled kernel
    or tensor operations): ``implementation(device)`` names the way it takes on ``device``.
    It changes no result, only the speed; ``bench perf`` rows and run records carry it.
    """

    def implementation(self, device: torch.device | str = "cpu") -> str:
        ...


def implementation_of(model: Any, device: torch.device | str) -> dict[str, str]:
    """``{"implementation": ...}`` for a :class:`DescribesImplementation` model, else ``{}``:
    what ``bench perf`` rows and run records carry."""
    if isinstance(model, DescribesImplementation):
        return {"implementation": model.implementation(device)}
    return {}


@runtime_checkable
class PerSizeClassifier(Protocol):
    """A model that predicts at every feature size it computes (the Fourier network).

    ``per_size_logits(x)`` is ``(B, S, K)``: the logits at each of ``S`` sizes, in
    increasing size, the last one the input's own (what ``forward`` returns).
    ``consistency_weight`` weighs the scale-consistency term of its loss
    (:func:`methods.fourier.loss.scale_consistency_loss`).
    """

    consistency_weight: float

    def per_size_logits(self, x: torch.Tensor) -> torch.Tensor:
        ...
