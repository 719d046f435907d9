"""Evaluation of a trained model on a built dataset: every metric of DESIGN.md.

``evaluate`` returns test accuracy, accuracy per test size (or per scale bin),
scale consistency, the equivariance error per layer and size on a fixed seeded
subset of test images, and inference throughput.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from tqdm.auto import tqdm

from scalebench.bench.metrics import (
    accuracy,
    equivariance_errors,
    grouped_accuracy,
    headline_eq_err,
    scale_consistency,
)
from scalebench.datasets.sampler import iterate_batches
from scalebench.datasets.scaling import canvas_rescale, fourier_resize
from scalebench.datasets.splits import ScaledDataset, Split

__all__ = ["evaluate", "measure_equivariance", "predict", "predict_tensor", "scale_groups"]


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, device: torch.device
            ) -> torch.Tensor:
    """Predicted label per image of ``split``, in split order."""
    model.eval()
    preds = torch.empty(len(split), dtype=torch.long)
    for x, _, pos in iterate_batches(split, batch_size):
        preds[pos] = model(x.to(device)).argmax(1).cpu()
    return preds


@torch.no_grad()
def predict_tensor(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
                   ) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                      for i in range(0, x.shape[0], batch_size)])


def scale_groups(ds: ScaledDataset, split: Split) -> list[str]:
    """Per-image group label: its size, or its shrink-factor bin of width 0.1."""
    if ds.scale_kind == "size":
        return [str(int(s)) for s in split.scale.tolist()]
    bins = torch.clamp((split.scale * 10).floor(), max=9).long().tolist()
    return [f"{b / 10:.1f}-{(b + 1) / 10:.1f}" for b in bins]


def _views(ds: ScaledDataset, full: torch.Tensor):
    """The scale-consistency views of ``full``, each made as the protocol makes a test image."""
    kind, grid = ds.consistency
    for value in grid:
        if kind == "fourier":
            yield fourier_resize(full.double(), int(value)).float()
        else:
            # clamped like the canvas protocol's test images (datasets.protocols): bicubic
            # overshoot would otherwise put ~6 % of a view's pixels outside the data's range
            yield canvas_rescale(full, float(value)).clamp_(0.0, 1.0)


def eq_subset(ds: ScaledDataset, n: int, seed: int) -> torch.Tensor:
    """A fixed seeded subset of ``n`` full-size test images (the same for every method)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randperm(len(ds.test), generator=g)[:n]
    return ds.test.full[idx]


@torch.no_grad()
def measure_equivariance(model: nn.Module, images: torch.Tensor, sizes, device: torch.device,
                         chunk: int = 64) -> dict[str, dict[int, float]]:
    """Equivariance error per layer and size, averaged over image chunks (weighted by count)."""
    model.eval()
    total: dict[str, dict[int, float]] = {}
    n = images.shape[0]
    for i in range(0, n, chunk):
        x = images[i:i + chunk].to(device)
        errs = equivariance_errors(model.features, model, x, sizes)
        w = x.shape[0] / n
        for layer, per_size in errs.items():
            acc = total.setdefault(layer, {})
            for s, v in per_size.items():
                acc[s] = acc.get(s, 0.0) + w * v
    return total


def evaluate(model: nn.Module, ds: ScaledDataset, device: torch.device, batch_size: int = 256,
             eq_images: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """All test metrics of a model, as record fields."""
    bar = tqdm(total=3, desc="evaluate", leave=False, disable=not progress)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    preds = predict(model, ds.test, batch_size, device)
    sync()
    infer_s = time.perf_counter() - t0
    labels = ds.test.full_labels
    out = {
        "test_acc": accuracy(preds, labels),
        "per_size_acc": grouped_accuracy(preds, labels, scale_groups(ds, ds.test)),
        "infer_img_per_s": len(ds.test) / max(infer_s, 1e-9),
    }
    bar.update()
    view_preds = torch.stack([predict_tensor(model, v, batch_size, device)
                              for v in _views(ds, ds.test.full)])
    out["scale_consistency"] = scale_consistency(view_preds)
    bar.update()
    try:
        per_layer = measure_equivariance(model, eq_subset(ds, eq_images, seed), ds.eq_sizes,
                                         device)
        out["equivariance_error"] = {layer: {str(s): v for s, v in d.items()}
                                     for layer, d in per_layer.items()}
        out["eq_err"] = headline_eq_err(per_layer)
        out["logit_inv_err"] = (sum(per_layer["logits"].values()) / len(per_layer["logits"])
                                if per_layer.get("logits") else float("nan"))
    except NotImplementedError as exc:  # a model without spatial features: said, not hidden
        out["equivariance_error"] = {}
        out["eq_err"] = float("nan")
        out["logit_inv_err"] = float("nan")
        out["eq_note"] = str(exc)
    bar.update()
    bar.close()
    return out
