"""``evaluate(model)``: any model that follows the model protocol, measured in one call the way a
run measures its trained model, with no registration.

The model needs only ``forward(x) -> logits`` and ``features(x) -> {name: map}``
(:class:`scaleqbench.methods.protocol.ScaleModel`). On a dataset's test split it
gives the numbers a ``bench run`` record holds for the same model and data (the
same code computes both): accuracy, overall and per test size, scale consistency,
with per-size BatchNorm statistics (``*_recal``) where a run re-estimates them,
and the equivariance error under each operator asked for, as
:class:`~bench.run.equivariance.EquivarianceResult` objects.

``sizes`` narrows a multi-resolution protocol to some of its sizes: the test images
of those sizes, the scale-consistency views at those sizes, and the equivariance
error at those below the full size. On a protocol whose images all have the
canvas size (``mnist-scale``) it sets the equivariance's target sizes only.
"""

from __future__ import annotations

import dataclasses
import math
import operator as _operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from scaleqbench.bench.run.equivariance import check_operators
from scaleqbench.bench.run.evaluate import (
    eq_subset,
    predict,
    recalibrated_predictions,
    recalibration_applies,
    scale_groups,
    view_predictions,
)
from scaleqbench.bench.run.metrics import (
    OPERATORS,
    accuracy,
    grouped_accuracy,
    scale_consistency,
)
from scaleqbench.datasets import load_or_build
from scaleqbench.datasets.scaling import INPUT_POLICIES
from scaleqbench.datasets.splits import ScaledDataset, Split
from scaleqbench.methods.protocol import ScaleModel

__all__ = ["evaluate"]


def _only_sizes(split: Split, sizes: set[int]) -> Split:
    """The images of ``split`` whose size is in ``sizes``, in split order."""
    keep = torch.tensor([int(s) in sizes for s in split.scale.tolist()], dtype=torch.bool)
    new_pos = torch.cumsum(keep.long(), 0) - 1
    kept = [s for s in split.sizes if s in sizes]
    return Split({s: split.images[s] for s in kept}, {s: split.labels[s] for s in kept},
                 {s: new_pos[split.index[s]] for s in kept}, split.full[keep],
                 split.full_labels[keep], split.scale[keep])


def _narrowed(ds: ScaledDataset, sizes: Iterable[int] | None) -> ScaledDataset:
    """``ds`` at ``sizes`` only (see the module docstring); ValueError naming a size that the
    protocol does not have."""
    if sizes is None:
        return ds
    try:
        wanted = list(dict.fromkeys(_operator.index(s) for s in sizes))
    except TypeError:
        raise ValueError(f"sizes must be integers, got {sizes!r}") from None
    if ds.scale_kind != "size":  # one canvas size: the sizes are the equivariance's targets
        bad = [s for s in wanted if not 1 <= s < ds.full_size]
        if bad or not wanted:
            raise ValueError(f"sizes on {ds.name} are the equivariance's target sizes, from 1 to "
                             f"{ds.full_size - 1}; got {', '.join(map(str, bad)) or 'none'}")
        return dataclasses.replace(ds, eq_sizes=tuple(wanted))
    bad = [s for s in wanted if s not in ds.test.sizes]
    if bad or not wanted:
        raise ValueError(f"{ds.name} has no test images of size {', '.join(map(str, bad)) or '?'}"
                         f"; its sizes are {', '.join(map(str, ds.test.sizes))}")
    keep = set(wanted)
    kind, grid = ds.consistency
    return dataclasses.replace(
        ds, test=_only_sizes(ds.test, keep),
        consistency=(kind, tuple(v for v in grid if kind != "fourier" or int(v) in keep)),
        eq_sizes=tuple(s for s in sorted(keep) if s < ds.full_size))


def _dataset(dataset: str | ScaledDataset, seed: int, source: str, data_root: Any,
             cache_dir: Any) -> ScaledDataset:
    if isinstance(dataset, ScaledDataset):
        return dataset
    return load_or_build(dataset, source=source, seed=seed, data_root=data_root,
                         cache_dir=cache_dir)[0]


def _subset(ds: ScaledDataset, test_images: int | None, seed: int) -> ScaledDataset:
    """``ds`` with a seeded random subset of ``test_images`` test images."""
    if test_images is not None:
        if isinstance(test_images, bool) or not isinstance(test_images, int) or test_images < 1:
            raise ValueError(f"test_images must be a positive integer, got {test_images!r}")
        ds = dataclasses.replace(ds, test=ds.test.subset(test_images,
                                                         torch.Generator().manual_seed(seed)))
    return ds


def _device_of(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    tensor = next(iter([*model.parameters(), *model.buffers()]), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _sized(per_size: dict[str, float], ds: ScaledDataset) -> dict[Any, float]:
    """Per-size accuracies keyed by the size as an integer (scale bins keep their label)."""
    return {int(k): v for k, v in per_size.items()} if ds.scale_kind == "size" else per_size


def _accuracy_fields(model: nn.Module, ds: ScaledDataset, device: torch.device, input: str,
                     batch_size: int, recal_images: int, seed: int) -> dict[str, Any]:
    """Accuracy, per size, and scale consistency; the same with per-size BatchNorm statistics
    where a run of this input policy re-estimates them."""
    labels, groups = ds.test.full_labels, scale_groups(ds, ds.test)
    preds = predict(model, ds.test, batch_size, device, input, ds.full_size)
    views = view_predictions(model, ds, device, list(ds.consistency[1]), batch_size, input,
                             ds.full_size)
    out: dict[str, Any] = {
        "test_acc": accuracy(preds, labels),
        "per_size_acc": _sized(grouped_accuracy(preds, labels, groups), ds),
        "scale_consistency": scale_consistency(views)}
    if recal_images and recalibration_applies(model, ds, input):
        preds_r, views_r, _ = recalibrated_predictions(model, ds, device, preds, views,
                                                       batch_size, recal_images, seed)
        out.update(test_acc_recal=accuracy(preds_r, labels),
                   per_size_acc_recal=_sized(grouped_accuracy(preds_r, labels, groups), ds),
                   scale_consistency_recal=scale_consistency(views_r))
    return out


def _checked(operators: str | Iterable[str], input: str) -> list[str]:
    """The operators as a list, each once; ValueError for an unknown one or input policy."""
    ops = list(dict.fromkeys([operators] if isinstance(operators, str) else operators))
    bad = [op for op in ops if op not in OPERATORS]
    if bad:
        raise ValueError(f"unknown equivariance operator(s) {', '.join(map(repr, bad))}; "
                         f"known: {', '.join(OPERATORS)}")
    if input not in INPUT_POLICIES:
        raise ValueError(f"unknown input policy {input!r}; known: {', '.join(INPUT_POLICIES)}")
    return ops


def evaluate(model: nn.Module, dataset: str | ScaledDataset = "mnist-res",
             sizes: Iterable[int] | None = None, *,
             operators: str | Iterable[str] = ("ideal", "scale-shift"), input: str = "native",
             eq_images: int = 256, test_images: int | None = None, seed: int = 0,
             device: torch.device | str | None = None, batch_size: int = 256,
             recal_images: int = 512, source: str = "embedded", data_root: Any = None,
             cache_dir: Any = None) -> dict[str, Any]:
    """Accuracy, scale consistency and equivariance of ``model`` on ``dataset``'s test split.

    ``model``: any ``nn.Module`` with ``forward`` and ``features`` (the model protocol);
    ``dataset``: a benchmark dataset's name (built or read from the cache, realization
    ``seed``) or a dataset already built; ``sizes``: some of its sizes (module docstring);
    ``operators``: the equivariance operators, measured on ``eq_images`` seeded test
    images (none: accuracy and consistency only); ``input``: how a small image reaches the model (``native``, ``pad``,
    ``upsample``); ``test_images``: a seeded subset of that many test images of those
    sizes (default: all of them); ``device``: where to compute (default: where the model's weights are);
    ``recal_images`` 0: no per-size BatchNorm statistics.

    Returns a dict: ``dataset``, ``input``, ``sizes`` and ``test_images`` (what was
    measured); ``test_acc``, ``per_size_acc`` (``{size: accuracy}``),
    ``scale_consistency`` and, where they apply, the same with ``_recal``; ``eq_err``,
    ``logit_inv_err`` (``ideal``) and ``eq_err_scale_shift`` (``scale-shift``) as a run
    records them, NaN for an operator not measured; ``equivariance``: ``{operator:
    EquivarianceResult}``. The model is left in the mode it was in. Raises TypeError for
    a model without ``features``, ValueError naming a wrong argument.
    """
    if not isinstance(model, ScaleModel):
        raise TypeError(f"{type(model).__name__} does not follow the model protocol: it needs "
                        "forward(x) -> logits and features(x) -> {name: feature map}")
    operators = _checked(operators, input)
    ds = _subset(_narrowed(_dataset(dataset, seed, source, data_root, cache_dir), sizes),
                 test_images, seed)
    dev = _device_of(model, device)
    was_training = model.training
    try:
        out: dict[str, Any] = {"dataset": ds.name, "input": input, "sizes": list(ds.test.sizes),
                               "test_images": len(ds.test)}
        out.update(_accuracy_fields(model, ds, dev, input, batch_size, recal_images, seed))
        results = (check_operators(model, eq_subset(ds, eq_images, seed), operators,
                                   ds.eq_sizes, input=input, device=dev)
                   if ds.eq_sizes and operators else {})
    finally:
        model.train(was_training)
    ideal, shifted = results.get("ideal"), results.get("scale-shift")
    out.update(eq_err=ideal.summary if ideal else math.nan,
               logit_inv_err=ideal.logit_error if ideal else math.nan,
               eq_err_scale_shift=shifted.summary if shifted else math.nan,
               equivariance=results)
    return out
