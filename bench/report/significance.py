"""Which leaderboard numbers are real: an interval on every metric, the methods that no test
tells from the best of their column, rank ranges, and the ranks over several comparisons.

For each leaderboard row and metric (:data:`METRICS`) the 95 % interval of the mean is

* over seeds, Student t, where the row has ``n >= 2`` finished runs;
* with one finished run, a bootstrap over its test images (:data:`stats.RESAMPLES`
  resamples, seeded): it holds no seed-to-seed variation. It needs the run's per-image
  record (``per_image``: right/wrong per test image, the same per scale-consistency set);
  the equivariance errors have no per-image record, and a run without one gets none.

Two rows of one comparison are compared by a paired two-sided test at ``ALPHA``
(:func:`compare`): over the seeds both ran when they share two or more (paired t-test),
else over the test images of the one seed they share (McNemar's exact test for
right/wrong outcomes). Each row of a column is compared with the column's best; a row
that the test does not find worse is *tied* with the best (bold in tables). The rank
range of a row (test accuracy) comes from comparing every pair
(:func:`stats.rank_ranges`). A comparison that no test can make (one seed and no
per-image record, or no shared seed) leaves the row untied with the best and the pair
unseparated in the ranks; a row that no test compares with any other has no rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scaleqbench.bench import stats
from scaleqbench.bench.store.per_image import unpack_bits

__all__ = ["METRICS", "Metric", "Sample", "compare", "judge_section", "rank_summary",
           "row_intervals", "samples"]


@dataclass(frozen=True)
class Metric:
    """A leaderboard metric: its record field, the board's column of its mean, which way is
    better, the ``per_image`` key of its per-image outcome (and of the recalibrated one) and
    the range its value lies in (intervals are clipped to it)."""

    name: str
    column: str
    better: str
    per_image: str | None
    bounds: tuple[float, float]

    @property
    def recal(self) -> str | None:
        return f"{self.per_image}_recal" if self.per_image else None


METRICS: tuple[Metric, ...] = (
    Metric("test_acc", "test_acc_mean", "max", "test_correct", (0.0, 1.0)),
    Metric("scale_consistency", "scale_consistency", "max", "consistent", (0.0, 1.0)),
    Metric("eq_err", "eq_err", "min", None, (0.0, math.inf)),
    Metric("logit_inv_err", "logit_inv_err", "min", None, (0.0, math.inf)),
)
#: the metric a row's rank is of
RANKED = METRICS[0]
#: the name of each test, as the notes and the CSV give it
TESTS = {"seeds": "paired t-test over seeds", "bits": "McNemar's exact test over test images",
         "values": "paired bootstrap over test images"}


@dataclass
class Sample:
    """What the finished runs of one row hold of one metric: a value per seed, and per seed the
    per-image outcomes where the record has them."""

    per_seed: dict[int, float] = field(default_factory=dict)
    per_image: dict[int, np.ndarray] = field(default_factory=dict)


def _judged(run: pd.Series, metric: Metric) -> tuple[Any, str | None]:
    """The value the leaderboard judges a run on (the recalibrated one where the run has it,
    :mod:`bench.run.precise_bn`) and the ``per_image`` key of its per-image outcome."""
    recal = run.get(f"{metric.name}_recal")
    if recal is not None and pd.notna(recal):
        return recal, metric.recal
    return run.get(metric.name), metric.per_image


def samples(ok: pd.DataFrame) -> dict[str, Sample]:
    """Per metric, the :class:`Sample` of the finished runs ``ok`` of one row."""
    out = {m.name: Sample() for m in METRICS}
    for _, run in ok.iterrows():
        per_image = run.get("per_image") if isinstance(run.get("per_image"), dict) else {}
        for m in METRICS:
            value, key = _judged(run, m)
            if value is None or not np.isfinite(float(value)):
                continue
            seed = int(run.seed)
            out[m.name].per_seed[seed] = float(value)
            packed = per_image.get(key) if key else None
            if packed:
                out[m.name].per_image[seed] = np.asarray(unpack_bits(packed), dtype=float)
    return out


def row_intervals(sample: Sample, metric: Metric) -> dict[str, Any]:
    """The interval columns of one row and metric: ``{name}_lo``, ``_hi`` (clipped to the
    metric's range), ``_std`` (over seeds, n >= 2) and ``_ci`` (``t``, ``bootstrap`` or
    empty: no interval)."""
    if len(sample.per_seed) >= 2:
        iv = stats.t_interval(list(sample.per_seed.values()))
    elif len(sample.per_seed) == 1 and sample.per_image:
        iv = stats.bootstrap_interval(next(iter(sample.per_image.values())))
    else:
        iv = None
    lo, hi = metric.bounds
    name = metric.name
    if iv is None:
        return {f"{name}_lo": math.nan, f"{name}_hi": math.nan, f"{name}_std": math.nan,
                f"{name}_ci": ""}
    return {f"{name}_lo": max(iv.lo, lo), f"{name}_hi": min(iv.hi, hi), f"{name}_std": iv.std,
            f"{name}_ci": iv.kind}


def compare(a: Sample, b: Sample, metric: Metric) -> tuple[float, float, str]:
    """``(p, diff, test)``: the two-sided p-value that rows ``a`` and ``b`` differ in
    ``metric``, their mean paired difference ``a - b`` and the test's key in :data:`TESTS`;
    ``(nan, nan, "")`` when no test applies."""
    common = sorted(set(a.per_seed) & set(b.per_seed))
    if len(common) >= 2:
        x = np.array([a.per_seed[s] for s in common])
        y = np.array([b.per_seed[s] for s in common])
        return stats.paired_t_test(x, y), float((x - y).mean()), "seeds"
    for seed in common:
        x, y = a.per_image.get(seed), b.per_image.get(seed)
        if x is None or y is None or len(x) != len(y):
            continue
        diff = float((x - y).mean())
        if metric.per_image is not None:
            return stats.mcnemar_exact(x > 0.5, y > 0.5), diff, "bits"
        return stats.paired_bootstrap_test(x, y), diff, "values"
    return math.nan, math.nan, ""


def _better(p: float, diff: float, metric: Metric) -> bool:
    """Whether a comparison found its first row significantly better than its second."""
    if not p < stats.ALPHA:
        return False
    return diff > 0 if metric.better == "max" else diff < 0


def _vs_best(rows: list[dict], metric: Metric) -> None:
    """Set ``{name}_tied``, ``_p`` and ``_test`` of each row: compared with the best."""
    name = metric.name
    valued = [r for r in rows if np.isfinite(r.get(metric.column, math.nan))]
    for r in rows:
        r.update({f"{name}_tied": False, f"{name}_p": math.nan, f"{name}_test": ""})
    if not valued:
        return
    pick = max if metric.better == "max" else min
    best = pick(valued, key=lambda r: r[metric.column])
    for r in valued:
        if r is best:
            r[f"{name}_tied"] = True
            continue
        p, diff, test = compare(best["_samples"][name], r["_samples"][name], metric)
        r.update({f"{name}_p": p, f"{name}_test": TESTS.get(test, ""),
                  f"{name}_tied": bool(test) and not _better(p, diff, metric)})


def _ranks(rows: list[dict], metric: Metric = RANKED) -> None:
    """Set ``rank_lo`` and ``rank_hi`` of each row with a value. A pair no test can compare
    counts as not separated (the ranges only widen); a row that no test compares with any
    other gets NaN: its rank is unknown."""
    valued = [r for r in rows if np.isfinite(r.get(metric.column, math.nan))]
    for r in rows:
        r["rank_lo"] = r["rank_hi"] = math.nan
    k = len(valued)
    better = np.zeros((k, k), dtype=bool)
    tested = np.zeros(k, dtype=bool)
    for i in range(k):
        for j in range(i + 1, k):
            p, diff, test = compare(valued[i]["_samples"][metric.name],
                                    valued[j]["_samples"][metric.name], metric)
            if not test:
                continue
            tested[[i, j]] = True
            better[i, j] = _better(p, diff, metric)
            better[j, i] = _better(p, -diff, metric)
    for r, (lo, hi), known in zip(valued, stats.rank_ranges(better), tested):
        if known or k == 1:
            r["rank_lo"], r["rank_hi"] = float(lo), float(hi)


def judge_section(rows: list[dict]) -> None:
    """Fill the comparison columns of the rows of one comparison (in place); each row holds
    its metric means and ``_samples`` (:func:`samples`)."""
    for metric in METRICS:
        _vs_best(rows, metric)
    _ranks(rows)


def rank_summary(board: pd.DataFrame, sections: Iterable[tuple[Any, pd.DataFrame]],
                 metric: Metric = RANKED) -> tuple[pd.DataFrame, stats.FriedmanResult] | None:
    """The average rank of each method over several comparisons (Demšar 2006): the methods
    with a value in every one of ``sections`` (``(key, rows)``), ranked within each (1 the
    best, ties sharing), Friedman's test and the Nemenyi critical difference. None with fewer
    than two comparisons or two such methods. A method label that appears twice in one
    comparison (two input policies) counts with its better row."""
    tables = []
    for _, sub in sections:
        sub = sub[np.isfinite(sub[metric.column].astype(float))]
        sub = sub.sort_values(metric.column, ascending=metric.better != "max")
        tables.append(sub.drop_duplicates("method").set_index("method")[metric.column])
    if len(tables) < 2:
        return None
    common = [m for m in tables[0].index if all(m in t.index for t in tables[1:])]
    if len(common) < 2:
        return None
    scores = np.array([[float(t[m]) for m in common] for t in tables])
    ranks = stats.average_ranks(scores, higher_is_better=metric.better == "max")
    result = stats.friedman(ranks)
    frame = pd.DataFrame({"method": common, "average_rank": result.mean_ranks})
    frame = frame.sort_values("average_rank", kind="stable").reset_index(drop=True)
    frame["within_cd"] = frame.average_rank - frame.average_rank.min() <= result.cd
    return frame, result
