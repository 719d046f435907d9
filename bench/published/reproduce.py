"""Reproduce a published table: its sweep as RunSpecs, and ours set beside the paper's.

A table (:mod:`bench.published.table_files`) becomes RunSpecs, one set per column
(:func:`plan`), and runs through ``bench run``'s own machinery
(:func:`bench.cli.cmd_run.run_sweep`: any launcher, resumable, the leaderboard and
report in ``--out``). :func:`comparison` then collects, per column, method and
metric, our mean ± std over seeds and, only where a run's protocol is the one the
published figure was measured under (:func:`~bench.published.reference.compares_to_published`),
the published value, Δ = ours − published and Δ in units of the published std where
the paper prints one. On the embedded source the table runs scaled down to the 5,000
embedded digits; those numbers are labelled so and never compared (their protocol is
never the published one, and :func:`comparison` refuses them besides).

The equivariance column of the Fourier paper's tables is its authors' own measure
(``eq_err_rahman_yeh``: the run's ``rahman-yeh`` operator, read by :func:`metric_value`).
A column may say for which methods a published value of a metric was measured as ours is
(``measured_as_published``: the authors published the measuring code for their own model
only); the other methods' published values stand beside ours marked "protocol partly
unknown", with no Δ.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from scaleqbench.bench.errors import BadArgumentError, DataSourceError
from scaleqbench.bench.published.reference import (
    compares_to_published,
    load_published,
    train_images,
)
from scaleqbench.bench.published.table_files import Column, Table
from scaleqbench.bench.store.record import RunRecord, protocol_key
from scaleqbench.bench.spec import RunSpec, expand
from scaleqbench.datasets import UnknownDatasetError, dataset_info
from scaleqbench.datasets.rahman_yeh import recorded_number

__all__ = ["EMBEDDED", "PARTLY_UNKNOWN", "Planned", "default_out", "comparison", "metric_value",
           "plan"]

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
#: how a published value measured in a way we cannot fully repeat is marked (no Δ)
PARTLY_UNKNOWN = "protocol partly unknown"


@dataclass(frozen=True)
class Planned:
    """One run of a table: the column it fills and its spec."""

    column: Column
    spec: RunSpec


def plan(table: Table, source: str = EMBEDDED, *, methods: list[str] | None = None,
         seeds: list[int] | None = None, epochs: int | None = None,
         limit_train: int | None = None, limit_eval: int | None = None,
         recipe: dict[str, Any] | None = None, out: Path | None = None,
         data_root: str | None = None, cache_dir: str | None = None,
         device: str = "auto") -> list[Planned]:
    """The runs of ``table`` on ``source``: every column x method x seed.

    On the embedded source the table's ``[embedded]`` scale-down applies (its preset, seeds,
    epochs, test images and training-set sizes); a table without one needs the full data
    (:class:`DataSourceError`).
    ``methods`` (a subset of the table's), ``seeds``, ``epochs`` and ``limit_eval`` override
    the table, and ``limit_train`` caps every column's training images (smoke tests); a run so
    changed is no longer the published protocol and is not compared. ``recipe`` overrides
    fields of every method's training recipe, over the table's own ``recipe``. The specs are
    not resolved yet (:func:`bench.run.resolve.resolve`).
    """
    embedded = source == EMBEDDED
    if embedded and table.embedded is None:
        raise DataSourceError(f"table {table.name} has no embedded scale-down (its data is not "
                              "embedded); run it with --source torchvision --data-root DIR")
    chosen = list(table.methods) if methods is None else methods
    unknown = [m for m in chosen if m not in table.methods]
    if unknown or not chosen:
        raise BadArgumentError(f"--methods {','.join(chosen) or '(none)'}: {table.name}'s "
                               f"methods are {', '.join(table.methods)}")
    preset = table.embedded.preset if embedded else table.preset
    seeds = list(seeds or (table.embedded.seeds if embedded else table.seeds))
    if embedded:  # the scale-down's own epochs and test split, unless overridden
        epochs = epochs if epochs is not None else table.embedded.epochs
        limit_eval = limit_eval if limit_eval is not None else table.embedded.test_images
    experiment = (out or default_out(table, source)).name
    runs: list[Planned] = []
    for column in table.columns:
        n_train = (table.embedded.train_images.get(column.key) if embedded
                   else column.train_images)
        if limit_train is not None:
            n_train = limit_train if n_train is None else min(n_train, limit_train)
        for spec in expand([(m, column.options_for(m)) for m in chosen], column.dataset,
                           seeds, preset,
                           input=table.input, recipe={**dict(table.recipe), **(recipe or {})},
                           source=source, epochs=epochs,
                           limit_train=n_train, limit_eval=limit_eval, experiment=experiment,
                           data_root=data_root, cache_dir=cache_dir, device=device):
            runs.append(Planned(column, spec))
    return runs


def default_out(table: Table, source: str) -> Path:
    return Path("results") / f"reproduce-{table.name}-{source}"


def metric_value(record: RunRecord, metric: str) -> float | None:
    """``metric`` of a finished run: accuracy and scale consistency as the leaderboard judges
    them (per-size BatchNorm statistics where the run has them), the error as 1 − accuracy,
    ``eq_err_rahman_yeh`` the authors' number from the run's ``rahman-yeh`` errors (None where
    the run's protocol is not theirs)."""
    acc = record.test_acc_recal if record.test_acc_recal is not None else record.test_acc
    if metric == "test_acc":
        value = acc
    elif metric == "test_err":
        value = None if acc is None else 1.0 - acc
    elif metric == "scale_consistency":
        value = (record.scale_consistency_recal if record.scale_consistency_recal is not None
                 else record.scale_consistency)
    elif metric == "eq_err":
        value = record.eq_err
    elif metric == "eq_err_rahman_yeh":
        value = _rahman_yeh(record)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    return value if value is not None and math.isfinite(value) else None


def _rahman_yeh(record: RunRecord) -> float | None:
    nested = (record.equivariance_error_ops or {}).get("rahman-yeh")
    try:
        family = dataset_info(record.spec.dataset).protocol
    except UnknownDatasetError:
        return None
    return recorded_number(nested, family) if nested else None


def _published_lookup(published: pd.DataFrame) -> dict[tuple, tuple[float, float, dict]]:
    out = {}
    for row in published.itertuples(index=False):
        key = (row.dataset, row.method, row.metric, train_images(row.train_images))
        out[key] = (float(row.value), float(row.std), row._asdict())
    return out


def comparison(runs: list[Planned], records: list[RunRecord],
               published: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per column, method and metric: ours (mean, sample std and count over the
    finished runs; failed runs counted apart) and, where every run of the row was made under
    the published figure's protocol and none on the embedded source, the published value,
    its std, Δ = ours − published and Δ / published std -- Δ only where the column says the
    value was measured as ours is (:meth:`Column.protocol_known`; ``note``
    :data:`PARTLY_UNKNOWN` otherwise)."""
    published = load_published() if published is None else published
    pub = _published_lookup(published)
    by_run = {(protocol_key(r), r.seed): r for r in records}
    groups: dict[tuple[str, str], list[Planned]] = {}
    for p in runs:
        groups.setdefault((p.column.key, p.spec.method), []).append(p)
    rows = []
    for (_, method), planned in groups.items():
        column = planned[0].column
        found = [by_run.get(((p.spec.protocol, p.spec.label), p.spec.seed))
                 for p in planned]
        ok = [r for r in found if r is not None and r.ok]
        failed = sum(1 for r in found if r is not None and not r.ok)
        embedded = any(p.spec.source == EMBEDDED for p in planned)
        # a recipe override is not the published training protocol either
        same = not embedded and all(compares_to_published(p.spec.protocol, method,
                                                          column.train_images)
                                    and not p.spec.recipe_overrides for p in planned)
        for metric in column.metrics:
            values = [v for v in (metric_value(r, metric) for r in ok) if v is not None]
            mean = sum(values) / len(values) if values else math.nan
            std = pd.Series(values, dtype=float).std(ddof=1) if len(values) > 1 else math.nan
            ref = pub.get((column.dataset, method, metric, column.train_images)) if same else None
            value, pstd, meta = ref if ref else (math.nan, math.nan, {})
            known = column.protocol_known(metric, method)
            delta = mean - value if known else math.nan
            rows.append({
                "column": column.key, "label": column.label, "dataset": column.dataset,
                "train_images": planned[0].spec.limit_train, "method": method,
                "metric": metric, "mean": mean, "std": std, "n": len(values),
                "planned": len(planned), "failed": failed, "embedded": embedded,
                "comparable": same, "published": value, "published_std": pstd,
                "note": "" if known or ref is None else PARTLY_UNKNOWN,
                "delta": delta,
                "delta_sd": delta / pstd if math.isfinite(pstd) and pstd > 0 else math.nan,
                "table": meta.get("table"), "page": meta.get("page"),
                "verified_from": meta.get("verified_from"), "source": meta.get("source"),
            })
    return pd.DataFrame(rows)
