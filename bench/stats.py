"""The statistics behind the leaderboard: confidence intervals, paired tests, tied ranks and the
average-rank comparison over several datasets.

Pure functions of numbers (no records, no tables), each one a textbook procedure:

* :func:`t_interval` -- the Student t interval of a mean over ``n >= 2`` values (seeds);
* :func:`bootstrap_interval` -- the percentile bootstrap interval of a mean over the values
  of one run (its test images), seeded so that a report is the same every time it is made;
* :func:`median_interval` -- the distribution-free interval of a median between two order
  statistics (timings over rounds: skewed, with outliers, no mean worth taking);
* :func:`paired_t_test` (per-seed values of two methods, same seeds),
  :func:`mcnemar_exact` (per-image right/wrong of two methods on the same images) and
  :func:`paired_bootstrap_test` (per-image values of two methods) -- two-sided p-values;
* :func:`rank_ranges` -- the ranks a method may take given which pairs a test separates;
* :func:`average_ranks`, :func:`friedman` and :func:`nemenyi_cd` -- the comparison of
  ``k`` methods over ``N`` datasets of Demšar (JMLR 7, 2006): Friedman's test on the
  ranks and the Nemenyi critical difference of average ranks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sp

from scaleqbench.bench.formatting import MISSING, finite

__all__ = ["ALPHA", "CONFIDENCE", "RESAMPLES", "SEED", "FriedmanResult", "Interval",
           "average_ranks", "bootstrap_interval", "friedman", "friedman_from_mean_ranks",
           "MedianInterval", "mcnemar_exact", "median_interval", "nemenyi_cd",
           "nemenyi_q", "paired_bootstrap_test", "paired_t_test", "rank_label", "rank_ranges",
           "t_interval"]

#: the significance level of every test, and the confidence of every interval (1 - ALPHA)
ALPHA = 0.05
CONFIDENCE = 1 - ALPHA
#: bootstrap resamples, and the seed that makes them the same in every report
RESAMPLES = 2000
SEED = 0
#: resampled means drawn at once (bounds the memory of an index matrix to ~16 MB)
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval ``[lo, hi]``; ``std`` is the sample standard
    deviation (``ddof=1``) of the ``n`` values when they are seeds, ``kind`` says how the
    interval was made: ``"t"`` (over seeds) or ``"bootstrap"`` (over one run's images)."""

    mean: float
    lo: float
    hi: float
    std: float
    n: int
    kind: str


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval | None:
    """``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)`` over the finite ``values``; None below two."""
    x = _finite(values)
    n = len(x)
    if n < 2:
        return None
    mean, std = float(x.mean()), float(x.std(ddof=1))
    half = float(_sp.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, std, n, "t")


@dataclass(frozen=True)
class MedianInterval:
    """A median of ``n`` values with the interval ``[lo, hi]`` between two order statistics;
    ``coverage``: the probability that such an interval holds the true median, whatever the
    distribution (continuous) -- at least the confidence asked for when ``n`` allows it."""

    median: float
    lo: float
    hi: float
    coverage: float
    n: int


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> MedianInterval | None:
    """The median of the finite ``values`` and ``[x_(k), x_(n+1-k)]`` (order statistics from 1)
    with the largest ``k`` whose coverage ``1 - 2 P(Binomial(n, 1/2) <= k - 1)`` is at least
    ``confidence``. Where no ``k`` reaches it (``n <= 5`` at 95 %), ``[min, max]`` with its own,
    lower coverage. None without values."""
    x = np.sort(_finite(values))
    n = len(x)
    if n == 0:
        return None
    k = 1
    while k < (n + 1) // 2 and 1 - 2 * _sp.binom.cdf(k, n, 0.5) >= confidence:
        k += 1
    coverage = 1 - 2 * float(_sp.binom.cdf(k - 1, n, 0.5)) if n > 1 else 0.0
    return MedianInterval(float(np.median(x)), float(x[k - 1]), float(x[n - k]), coverage, n)


def _resampled_means(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The means of ``resamples`` resamples (with replacement, ``len(x)`` each) of ``x``."""
    n = len(x)
    if np.isin(x, (0.0, 1.0)).all():
        # right/wrong per image: the count of ones in a resample is Binomial(n, mean), the
        # exact distribution of the resampled sum, without an n-by-resamples index matrix
        return rng.binomial(n, x.mean(), size=resamples) / n
    out = np.empty(resamples)
    step = max(1, _CHUNK_CELLS // n)
    for i in range(0, resamples, step):
        m = min(step, resamples - i)
        out[i:i + m] = x[rng.integers(0, n, size=(m, n))].mean(axis=1)
    return out


def bootstrap_interval(values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED,
                       confidence: float = CONFIDENCE) -> Interval | None:
    """The percentile bootstrap interval of the mean of the finite ``values`` (the images of
    one run): the ``(1-c)/2`` and ``(1+c)/2`` quantiles of ``resamples`` resampled means.
    None below two values. It holds the variation over images only, none over seeds."""
    x = _finite(values)
    if len(x) < 2:
        return None
    means = _resampled_means(x, resamples, np.random.default_rng(seed))
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(x.mean()), float(lo), float(hi), math.nan, len(x), "bootstrap")


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test of ``mean(a - b) = 0`` (``a[i]``, ``b[i]``:
    the same seed); NaN below two pairs. Differences that are all equal give 1 when they
    are zero and 0 otherwise (t is infinite: every seed says the same)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return math.nan
    sd = d.std(ddof=1)
    # equal differences up to rounding (0.9 - 0.8 and 0.8 - 0.7 differ in the last bit)
    if not sd > 1e-12 * float(np.abs(d).max()):
        return 1.0 if np.all(d == 0) else 0.0
    t = d.mean() / (sd / math.sqrt(len(d)))
    return float(2 * _sp.t.sf(abs(t), len(d) - 1))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """McNemar's exact two-sided p-value for paired right/wrong outcomes of two classifiers on
    the same images: with ``n01`` images only ``a`` gets right and ``n10`` only ``b``,
    ``p = min(1, 2 · P[Binomial(n01 + n10, 1/2) <= min(n01, n10)])``."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes must have one shape, got {a.shape} and {b.shape}")
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    if n01 + n10 == 0:
        return 1.0
    return float(min(1.0, 2 * _sp.binom.cdf(min(n01, n10), n01 + n10, 0.5)))


def paired_bootstrap_test(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES,
                          seed: int = SEED) -> float:
    """Two-sided p-value of ``mean(a - b) = 0`` by the paired percentile bootstrap: twice the
    smaller share of resampled mean differences on either side of zero (capped at 1), so
    that ``p < alpha`` exactly when 0 lies outside the ``1 - alpha`` percentile interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        return math.nan
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    means = _resampled_means(d, resamples, np.random.default_rng(seed))
    return float(min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean())))


def rank_ranges(better: np.ndarray) -> list[tuple[int, int]]:
    """The ranks each of ``k`` methods may take: ``better[i, j]`` says a test found ``i``
    significantly better than ``j``. Method ``i`` ranks from ``1 + #{j: j better than i}``
    to ``k - #{j: i better than j}``: every order that agrees with the separated pairs
    puts it within that range, and only pairs the tests separate narrow it."""
    better = np.asarray(better, dtype=bool)
    k = better.shape[0]
    if better.shape != (k, k):
        raise ValueError(f"better must be a square matrix, got shape {better.shape}")
    return [(1 + int(better[:, i].sum()), k - int(better[i, :].sum())) for i in range(k)]


def rank_label(lo: float | None, hi: float | None) -> str:
    """``"1"`` or ``"1–3"`` (an en dash); the em dash of a missing value otherwise."""
    if finite(lo) is None or finite(hi) is None:
        return MISSING
    return f"{int(lo)}" if lo == hi else f"{int(lo)}–{int(hi)}"


def average_ranks(scores: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Per row (a dataset) the rank of each column (a method), 1 the best, ties sharing the
    mean of their ranks (Demšar 2006, section 3.2.2); ``scores`` is ``N × k``."""
    scores = np.asarray(scores, dtype=float)
    signed = -scores if higher_is_better else scores
    return np.vstack([_sp.rankdata(row) for row in signed]) if len(scores) else scores


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's test of ``k`` methods on ``n`` datasets: ``chi2`` (``χ²_F``, ``k - 1``
    degrees of freedom) and Iman and Davenport's ``f`` (``F_F``, ``k - 1`` and
    ``(k - 1)(n - 1)`` degrees of freedom) with their p-values, and the Nemenyi critical
    difference ``cd`` of average ranks at ``alpha``."""

    mean_ranks: np.ndarray
    n: int
    k: int
    chi2: float
    p_chi2: float
    f: float
    p_f: float
    cd: float
    alpha: float


def friedman(ranks: np.ndarray, alpha: float = ALPHA) -> FriedmanResult:
    """Friedman's test on an ``n × k`` matrix of ranks (:func:`average_ranks`)."""
    ranks = np.asarray(ranks, dtype=float)
    return friedman_from_mean_ranks(ranks.mean(axis=0), ranks.shape[0], alpha)


def friedman_from_mean_ranks(mean_ranks: Sequence[float], n: int,
                             alpha: float = ALPHA) -> FriedmanResult:
    """Friedman's test from the mean ranks ``R_j`` of ``k`` methods over ``n`` datasets, in the
    form of Demšar (2006, section 3.2.2): ``χ²_F = 12n / (k(k+1)) · (Σ R_j² - k(k+1)²/4)``
    and ``F_F = (n-1) χ²_F / (n(k-1) - χ²_F)``."""
    mean = np.asarray(mean_ranks, dtype=float)
    k = len(mean)
    if n < 2 or k < 2:
        raise ValueError(f"Friedman's test needs at least 2 datasets and 2 methods, got {n}, {k}")
    chi2 = 12 * n / (k * (k + 1)) * (float((mean ** 2).sum()) - k * (k + 1) ** 2 / 4)
    chi2 = max(chi2, 0.0)  # rounding below an exact zero
    denom = n * (k - 1) - chi2
    f = (n - 1) * chi2 / denom if denom > 0 else math.inf
    p_f = float(_sp.f.sf(f, k - 1, (k - 1) * (n - 1))) if math.isfinite(f) else 0.0
    return FriedmanResult(mean, n, k, chi2, float(_sp.chi2.sf(chi2, k - 1)), f, p_f,
                          nemenyi_cd(k, n, alpha), alpha)


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """The Nemenyi test's critical value ``q_alpha``: the studentized range statistic of ``k``
    means (infinite degrees of freedom) divided by ``sqrt(2)`` (Demšar 2006, table 5a)."""
    return float(_sp.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """The Nemenyi critical difference ``q_alpha · sqrt(k(k+1) / (6n))``: two of ``k`` methods
    ranked over ``n`` datasets differ significantly when their average ranks differ by more."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))
