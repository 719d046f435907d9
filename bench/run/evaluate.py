"""Evaluation of a trained model on a built dataset: every metric of docs/architecture.md.

``evaluate`` returns test accuracy, accuracy per test size (or per scale bin),
scale consistency, the equivariance error per layer and size on a fixed seeded
subset of test images, and inference throughput; and per test image whether it
was classified right and consistently across views (``per_image``, packed: the
leaderboard's one-seed intervals and tests read it).

Every image reaches the model through the run's input policy
(:func:`datasets.scaling.to_canvas`): test images, scale-consistency views and
the logits of the invariance error. The feature maps of the equivariance error
are measured on native sizes under every policy: the error compares
``D_m f(x)`` with ``D_m f(D_s x)``, a property of the network's maps under the
ideal rescaling. A padded input would put the shrunk object in the middle of a
full-size map, where comparing it with ``f(x)`` measures the zoom, not the model
(measuring that needs a canvas operator with a crop, the ``bicubic``/canvas
family of operators).

Under ``native`` input a model with BatchNorm is also evaluated with its batch
statistics re-estimated per test size (:mod:`bench.run.precise_bn`) on training
images of that size: ``*_recal`` fields beside the plain ones.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from tqdm.auto import tqdm

from scaleqbench.bench.run.devices import synchronize
from scaleqbench.bench.run.equivariance import check_operators
from scaleqbench.bench.run.metrics import accuracy, grouped_accuracy, scale_consistency
from scaleqbench.bench.run.precise_bn import batchnorm_layers, recalibrated
from scaleqbench.bench.run.train_steps import to_device
from scaleqbench.bench.store.per_image import pack_bits
from scaleqbench.datasets.sampler import iterate_batches
from scaleqbench.datasets.scaling import canvas_rescale, fourier_resize, to_canvas
from scaleqbench.datasets.rahman_yeh import authors_test_images
from scaleqbench.datasets.splits import ScaledDataset, Split

__all__ = ["consistency_subset", "eq_subset", "equivariance_fields", "evaluate", "per_image_outcomes", "predict",
           "predict_tensor",
           "recalibrated_predictions", "recalibration_applies", "scale_groups",
           "view_predictions"]


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, device: torch.device,
            input: str = "native", canvas: int | None = None) -> torch.Tensor:
    """Predicted label per image of ``split``, in split order, each image reaching the model
    through input policy ``input`` onto a ``canvas``-sized canvas. The predictions stay on
    the device until the split is done (one wait for the device, not one per batch)."""
    model.eval()
    preds = torch.empty(len(split), dtype=torch.long, device=device)
    for x, _, pos in iterate_batches(split, batch_size):
        x = to_canvas(to_device(x, device), input, canvas or x.shape[-1])
        preds[pos.to(device)] = model(x).argmax(1)
    return preds.cpu()


@torch.no_grad()
def predict_tensor(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device,
                   input: str = "native", canvas: int | None = None) -> torch.Tensor:
    model.eval()
    return torch.cat([model(to_canvas(x[i:i + batch_size], input, canvas or x.shape[-1])
                            .to(device)).argmax(1).cpu()
                      for i in range(0, x.shape[0], batch_size)])


def scale_groups(ds: ScaledDataset, split: Split) -> list[str]:
    """Per-image group label: its size, or its shrink-factor bin of width 0.1."""
    if ds.scale_kind == "size":
        return [str(int(s)) for s in split.scale.tolist()]
    bins = torch.clamp((split.scale * 10).floor(), max=9).long().tolist()
    return [f"{b / 10:.1f}-{(b + 1) / 10:.1f}" for b in bins]


def _view(ds: ScaledDataset, full: torch.Tensor, value) -> torch.Tensor:
    """One scale-consistency view of ``full``, made as the protocol makes a test image."""
    if ds.consistency[0] == "fourier":
        return fourier_resize(full.double(), int(value)).float()
    # clamped like the canvas protocol's test images (datasets.protocols): bicubic
    # overshoot would otherwise put ~6 % of a view's pixels outside the data's range
    return canvas_rescale(full, float(value)).clamp_(0.0, 1.0)


@torch.no_grad()
def view_predictions(model: nn.Module, ds: ScaledDataset, device: torch.device,
                     values: list, batch_size: int = 256, input: str = "native",
                     canvas: int | None = None, index: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """``(V, N)``: the prediction for each test image in each view (one per ``values``);
    ``index``: only these test images (:func:`consistency_subset`), N of them.

    The views are made a batch at a time on the device (float64 where the protocol
    resizes in it), never a whole split at a time on the host: an STL-10 view of the test
    set alone is 1.8 GB in float64.
    """
    model.eval()
    full = ds.test.full if index is None else ds.test.full[index]
    out = torch.empty(len(values), full.shape[0], dtype=torch.long, device=device)
    for i in range(0, full.shape[0], batch_size):
        batch = to_device(full[i:i + batch_size], device)
        for v, value in enumerate(values):
            x = to_canvas(_view(ds, batch, value), input, canvas or batch.shape[-1])
            out[v, i:i + batch.shape[0]] = model(x).argmax(1)
    return out.cpu()


def eq_subset(ds: ScaledDataset, n: int, seed: int) -> torch.Tensor:
    """A fixed seeded subset of ``n`` full-size test images (the same for every method)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randperm(len(ds.test), generator=g)[:n]
    return ds.test.full[idx]


def consistency_subset(ds: ScaledDataset, n: int | None, seed: int) -> torch.Tensor | None:
    """The test images scale consistency is measured on: a fixed seeded subset of ``n`` of
    them, the same for every method of a seed (so that per-image outcomes pair across
    methods); None (every test image) when ``n`` is None or covers the split."""
    if n is None or n >= len(ds.test):
        return None
    g = torch.Generator().manual_seed(30_000 + seed)
    return torch.randperm(len(ds.test), generator=g)[:n].sort().values


def recalibration_applies(model: nn.Module, ds: ScaledDataset, input: str) -> bool:
    """Whether per-size BatchNorm statistics are estimated: native input on a protocol of
    several sizes, and a model that keeps batch statistics."""
    return (input == "native" and ds.scale_kind == "size" and len(ds.sizes) > 1
            and ds.consistency[0] == "fourier" and bool(batchnorm_layers(model)))


def recalibrated_predictions(model: nn.Module, ds: ScaledDataset, device: torch.device,
                             preds: torch.Tensor, view_preds: torch.Tensor,
                             batch_size: int = 256, images: int = 512, seed: int = 0,
                             index: torch.Tensor | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Test and view predictions with BatchNorm statistics re-estimated per size.

    At each size the training split holds, the statistics come from ``images`` training
    images (a fixed seeded subset) ``fourier_resize``-d to that size, the protocol's way
    of making an image of that size. A size the training split never held (the
    scale-generalisation protocols) has no training images: it keeps the statistics the
    model was trained with, so its numbers equal the plain ones. ``preds`` / ``view_preds``
    are the plain predictions (``index``: the consistency subset of ``view_preds``); copies
    are returned, with what was done.
    """
    g = torch.Generator().manual_seed(20_000 + seed)
    idx = torch.randperm(len(ds.train), generator=g)[:images]
    source = ds.train.full[idx]
    grid = [int(v) for v in ds.consistency[1]]
    preds, view_preds = preds.clone(), view_preds.clone()
    done = []
    for s in sorted(set(ds.test.sizes) | set(grid)):
        if s not in ds.train.sizes or source.shape[0] < 2:
            continue
        train_s = fourier_resize(source.double(), s).float()
        with recalibrated(model, train_s, device):
            if s in ds.test.images:
                preds[ds.test.index[s]] = predict_tensor(model, ds.test.images[s], batch_size,
                                                         device)
            views = [v for v, value in enumerate(grid) if value == s]
            if views:
                view_preds[views] = view_predictions(model, ds, device, [s], batch_size,
                                                     index=index)
        done.append(s)
    return preds, view_preds, {"images": int(source.shape[0]), "sizes": done}


def _keyed(per_layer: dict) -> dict[str, dict[str, float]]:
    """``{layer: {size: v}}`` with string sizes, as records store them (JSON keys)."""
    return {layer: {str(s): v for s, v in d.items()} for layer, d in per_layer.items()}


def equivariance_fields(model: nn.Module, ds: ScaledDataset, device: torch.device,
                        eq_images: int = 256, seed: int = 0, input: str = "native") -> dict:
    """The equivariance record fields: ``ideal`` (``equivariance_error``, ``eq_err``,
    ``logit_inv_err``) and ``scale-shift`` (``equivariance_error_ops``,
    ``eq_err_scale_shift``, ``scale_shift_left_out``) on :func:`eq_subset`'s images at
    the protocol's sizes (:func:`bench.run.equivariance.check_operators`); on the Fourier
    paper's protocols also ``rahman-yeh`` in ``equivariance_error_ops``, the authors' own
    measurement (their sizes, on the test images assigned the full size:
    :func:`datasets.rahman_yeh.authors_test_images`).

    A model without spatial features gets NaN and an ``eq_note`` saying why.
    """
    try:
        results = check_operators(model, eq_subset(ds, eq_images, seed),
                                  ("ideal", "scale-shift"), ds.eq_sizes, input=input,
                                  device=device)
    except NotImplementedError as exc:  # a model without spatial features: said, not hidden
        return {"equivariance_error": {}, "eq_err": float("nan"),
                "logit_inv_err": float("nan"), "eq_note": str(exc)}
    ideal, shifted = results["ideal"], results["scale-shift"]
    ops = {"scale-shift": _keyed(shifted.nested())}
    authors = authors_test_images(ds, seed)
    if authors is not None:  # their sizes (check_operators' default for the operator)
        ops["rahman-yeh"] = _keyed(check_operators(model, authors, "rahman-yeh", logits=False,
                                                   device=device)["rahman-yeh"].nested())
    return {
        "equivariance_error": _keyed(ideal.nested()), "eq_err": ideal.summary,
        "logit_inv_err": ideal.logit_error,
        "equivariance_error_ops": ops,
        "eq_err_scale_shift": shifted.summary,
        "scale_shift_left_out": _keyed(shifted.left_out),
    }


def per_image_outcomes(preds: torch.Tensor, labels: torch.Tensor, view_preds: torch.Tensor,
                       suffix: str = "") -> dict[str, str]:
    """Per test image, packed (:mod:`bench.store.per_image`): whether it was classified right
    (``test_correct``) and whether its prediction is the same in every view (``consistent``,
    what :func:`~bench.run.metrics.scale_consistency` averages; one per image of the
    consistency subset, in test order); ``suffix`` ``_recal``: with
    recalibrated BatchNorm statistics. The leaderboard's one-seed intervals and tests read
    them."""
    return {f"test_correct{suffix}": pack_bits((preds == labels).tolist()),
            f"consistent{suffix}": pack_bits((view_preds == view_preds[:1]).all(dim=0).tolist())}


def evaluate(model: nn.Module, ds: ScaledDataset, device: torch.device, batch_size: int = 256,
             eq_images: int = 256, seed: int = 0, progress: bool = False,
             input: str = "native", recal_images: int = 512,
             consistency_images: int | None = None) -> dict:
    """All test metrics of a model, as record fields; ``input`` is the run's input policy;
    scale consistency on :func:`consistency_subset`'s ``consistency_images`` test images."""
    canvas = ds.full_size
    recal = recalibration_applies(model, ds, input)
    bar = tqdm(total=3 + recal, desc="evaluate", leave=False, disable=not progress)
    synchronize(device)
    t0 = time.perf_counter()
    preds = predict(model, ds.test, batch_size, device, input, canvas)
    synchronize(device)
    infer_s = time.perf_counter() - t0
    labels = ds.test.full_labels
    out = {
        "test_acc": accuracy(preds, labels),
        "per_size_acc": grouped_accuracy(preds, labels, scale_groups(ds, ds.test)),
        "infer_img_per_s": len(ds.test) / max(infer_s, 1e-9),
    }
    bar.update()
    index = consistency_subset(ds, consistency_images, seed)
    view_preds = view_predictions(model, ds, device, list(ds.consistency[1]), batch_size,
                                  input, canvas, index)
    out["scale_consistency"] = scale_consistency(view_preds)
    out["per_image"] = per_image_outcomes(preds, labels, view_preds)
    bar.update()
    if recal:
        preds_r, views_r, info = recalibrated_predictions(
            model, ds, device, preds, view_preds, batch_size, recal_images, seed, index)
        out.update(test_acc_recal=accuracy(preds_r, labels),
                   per_size_acc_recal=grouped_accuracy(preds_r, labels,
                                                       scale_groups(ds, ds.test)),
                   scale_consistency_recal=scale_consistency(views_r), bn_recal=info)
        out["per_image"].update(per_image_outcomes(preds_r, labels, views_r, "_recal"))
        bar.update()
    out.update(equivariance_fields(model, ds, device, eq_images, seed, input))
    bar.update()
    bar.close()
    return out
