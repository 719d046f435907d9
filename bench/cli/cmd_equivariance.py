"""``bench equivariance``: the equivariance error of fresh or checkpointed models, no training.

One table per operator (:data:`bench.metrics.OPERATORS`), one row per method:
the error of each layer averaged over the sizes the operator reports
(``scale-shift``: the sizes on the model's scale grid for the maps that carry an
axis), the headline last layer first. Several initialisations of a method
(``--init-seeds``) or several checkpoints of one method (``--checkpoint``) are
aggregated as mean ± std; ``--each`` keeps one row per checkpoint file (e.g. one
per training epoch).

By default fresh models are a quick look (quick configs, two initialisations, 64
test images: seconds per method); ``--paper`` is the full study (published widths,
five initialisations, 256 images: minutes per method). An option given explicitly
wins over either (:data:`bench.cli.parser.EQUIVARIANCE_STUDIES`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from scaleqbench.bench.store.checkpoint import load_best
from scaleqbench.bench.errors import CheckpointError
from scaleqbench.bench.spec_parsing import format_method, parse_int_list, parse_methods

__all__ = ["OPERATOR_NOTES", "cmd_equivariance", "equivariance_tables",
           "models_for_equivariance", "resolve_study"]

#: what each operator's table measures, printed above it (sources: bench.metrics)
OPERATOR_NOTES = {
    "ideal": "D = fourier_resize, the ideal low-pass (Rahman & Yeh 2023); the headline eq_err",
    "scale-shift": "slice i of f(D_s x) against slice j of f(x) for N/s = sigma_j/sigma_i "
                   "(DISCO's loss), at the sizes on each lifted map's scale grid; maps without "
                   "a declared scale axis: the plain ideal comparison",
    "bicubic": "D = anti-aliased bicubic F.interpolate, input and maps (the SESN/DISCO code's "
               "interpolating rescale)",
    "lie": "Lie derivative of the zoom at the identity (Gruver et al. 2023), at each size: "
           "maps ||Lf||^2/||f||^2, logits mean |d softmax/dt| (bench/run/lie.py)",
    "rahman-yeh": "the Fourier paper's own measurement (bench/run/rahman_yeh.py): per-channel "
                  "ratio (eps 1e-6), maps cut below the Nyquist, at the authors' sizes unless "
                  "--sizes; first column: their number, the first (28 px) or last block's "
                  "errors summed over sizes / (sizes + 1)",
}


def _checkpoint_paths(args: argparse.Namespace) -> list[str]:
    """``--checkpoint`` values flattened (the flag repeats and each takes several files)."""
    return [p for group in args.checkpoint for p in (group if isinstance(group, list) else [group])]


def models_for_equivariance(args: argparse.Namespace, ds) -> Iterator[tuple[str, nn.Module, str]]:
    """(label, model, input policy) triples: fresh models from --methods, one per --init-seeds
    entry (same label), or models from --checkpoint files (each with the input policy it was
    trained under, unless --input says otherwise; the same label for the checkpoints of one
    method unless --each)."""
    from scaleqbench import methods
    from scaleqbench.bench.spec import resolve_input

    paths = _checkpoint_paths(args)
    if paths:
        for path in paths:
            ckpt = load_best(path)
            spec = ckpt.spec
            model = methods.create(spec.method, in_channels=ds.in_channels,
                                   num_classes=ds.num_classes, config=ckpt.config,
                                   **dict(spec.method_kwargs))
            try:
                model.load_state_dict(ckpt.state_dict)
            except RuntimeError as exc:  # e.g. trained on 3-channel STL-10, measured on MNIST
                trained = spec.dataset
                why = (f"it was trained on {trained}: pass --dataset {trained}"
                       if trained != ds.name else str(exc).splitlines()[0])
                raise CheckpointError(f"checkpoint {path} does not fit a {spec.method} "
                                      f"model for {ds.name}; {why}") from exc
            policy = (spec.input if args.input is None
                      else resolve_input(args.input, spec.method, ds.name))
            label = f"{spec.label} (trained"
            seed = spec.seed
            label += f", seed {seed}, {Path(path).name})" if args.each else f", seed {seed})"
            yield label, model, policy
        return
    config = args.config or ds.method_config
    init_seeds = parse_int_list(args.init_seeds, "init seed", lo=0)
    for name, kwargs in parse_methods(args.methods):
        policy = resolve_input(args.input or "published", name, ds.name)
        for seed in init_seeds:
            torch.manual_seed(seed)
            yield format_method(name, kwargs), methods.create(
                name, in_channels=ds.in_channels, num_classes=ds.num_classes, config=config,
                **kwargs), policy


def _row(label: str, policy: str, per_layer: dict, headline: float) -> dict:
    row = {"method": label, "input": policy, "eq_err (last layer)": headline}
    for layer, per_size in per_layer.items():
        row[layer] = (sum(per_size.values()) / len(per_size)) if per_size else float("nan")
    return row


def _trained_group(label: str) -> str:
    """Checkpoints of one method and different seeds share a row: ``cnn (trained, seed 0)``
    and ``cnn (trained, seed 1)`` -> ``cnn (trained)``."""
    head, sep, _ = label.partition(" (trained, seed ")
    return f"{head} (trained)" if sep and label.endswith(")") and label.count(", ") == 1 \
        else label


#: a cell for a layer the model does not have (a measured NaN stays ``nan``: it means something)
ABSENT = "—"


def _table(rows: list[dict]) -> tuple[pd.DataFrame, str]:
    table = pd.DataFrame(rows)
    merged = table["method"].map(_trained_group)
    if merged.duplicated().any() and not table["method"].duplicated().any():
        table["method"] = merged  # several checkpoints of one method: aggregate them
    # the layers each row's model has; the union of every model's layers makes the columns
    has = {(m, k) for m, r in zip(table["method"], rows) for k in r}
    groups = table.groupby(["method", "input"], sort=False)
    counts = groups.size()
    what = ""
    if counts.max() > 1:  # several initialisations or checkpoints: "mean ± std" per column
        mean, std = groups.mean(), groups.std()
        table = mean.apply(lambda col: [f"{m:.3e} ± {sd:.1e}" for m, sd in
                                        zip(col, std[col.name])])
        trained = any("(trained" in m for m in mean.index.get_level_values(0))
        table.insert(0, "checkpoints" if trained else "inits", counts)
        table = table.reset_index()
        what = (f"mean ± std over {counts.max()} "
                f"{'checkpoints' if trained else 'initialisations'}, ")
    table = table[[c for c in table.columns if c != "input"] + ["input"]]  # last: a note
    table = table.astype(object)
    for i, method in enumerate(table["method"]):
        for j, col in enumerate(table.columns):
            if (method, col) not in has and col not in ("inits", "checkpoints"):
                table.iat[i, j] = ABSENT
            elif isinstance(table.iat[i, j], float):  # a column of text and numbers: format here
                table.iat[i, j] = f"{table.iat[i, j]:.3e}"
    return table, what


def equivariance_tables(args: argparse.Namespace, ds, device: torch.device) -> int:
    """The command on a loaded dataset ``ds`` (arguments checked by
    :func:`bench.cli.validate.check_equivariance_args`); prints one table per operator."""
    from scaleqbench.bench.cli.validate import parse_operators
    from scaleqbench.bench.run.equivariance import check_operators
    from scaleqbench.bench.run.evaluate import eq_subset

    operators = parse_operators(args.operator)
    sizes = (parse_int_list(args.sizes, "size", lo=1, hi=ds.full_size - 1) if args.sizes
             else list(ds.eq_sizes))
    images = eq_subset(ds, args.images, args.seed)
    rows: dict[str, list[dict]] = {op: [] for op in operators}
    # rahman-yeh at the authors' own sizes unless --sizes says otherwise
    own = [op for op in operators if op == "rahman-yeh" and not args.sizes]
    for label, model, policy in models_for_equivariance(args, ds):
        model = model.to(device).eval()
        try:
            rest = [op for op in operators if op not in own]
            per_op = check_operators(model, images, rest, sizes, input=policy,
                                     device=device) if rest else {}
            for op in own:
                per_op[op] = check_operators(model, images, op, None, input=policy,
                                             device=device)[op]
        except NotImplementedError as exc:
            print(f"{label}: {exc}")
            continue
        for op, result in per_op.items():
            rows[op].append(_row(label, policy, result.nested(), result.summary))
    if not any(rows.values()):
        return 1
    for k, op in enumerate(operators):
        table, what = _table(rows[op])
        if op == "scale-shift":
            table = table.rename(columns={"eq_err (last layer)": "deepest lifted map"})
        if op == "rahman-yeh":
            table = table.rename(columns={"eq_err (last layer)": "authors' number"})
        if k:
            print()
        print(f"[{op}] {OPERATOR_NOTES[op]}")
        print(f"equivariance error on {len(images)} {ds.name} test images "
              f"(sizes {min(sizes)}..{max(sizes)} -> full {ds.full_size}), {what}mean over "
              "sizes; feature maps at native sizes, logits through each model's input policy:")
        print(table.to_markdown(index=False, floatfmt=".3e"))
    return 0


def resolve_study(args: argparse.Namespace) -> str:
    """Fill ``--config``, ``--init-seeds`` and ``--images`` that were not given from the study
    (``--paper`` or the default one); returns what is measured, in words."""
    from scaleqbench.bench.cli.parser import EQUIVARIANCE_STUDIES

    paper = getattr(args, "paper", False)
    for option, value in EQUIVARIANCE_STUDIES["paper" if paper else "default"].items():
        if getattr(args, option, None) is None:
            setattr(args, option, value)
    if _checkpoint_paths(args):
        return f"{args.images} test images per checkpoint"
    config = args.config or "the dataset's published widths"
    return (f"{'full study' if paper else 'quick look'}: config {config}, init seeds "
            f"{args.init_seeds}, {args.images} test images"
            + ("" if paper else " (--paper: the full study)"))


def cmd_equivariance(args: argparse.Namespace) -> int:
    from scaleqbench.bench.cli.common import load_dataset
    from scaleqbench.bench.cli.options import note_unused_options
    from scaleqbench.bench.cli.validate import check_equivariance_args
    from scaleqbench.bench.run.train import pick_device

    args.config_given = args.config is not None  # before the study fills it in
    study = resolve_study(args)
    device = pick_device(check_equivariance_args(args))
    note_unused_options(args)
    ds, _, _ = load_dataset(args.dataset, args, args.seed)
    print(f"bench equivariance: {study}")
    return equivariance_tables(args, ds, device)
