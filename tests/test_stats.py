"""The leaderboard's statistics (``bench.stats``) against independent computations.

Intervals against scipy and against their coverage on distributions whose mean is
known; the tests against scipy and hand counts; the rank ranges on constructed
outcomes; Friedman's test and the Nemenyi critical difference against the values
of Demšar (JMLR 7, 2006).
"""

from __future__ import annotations

import math
from math import comb

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sp

from scaleqbench.bench import stats

values = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=30)


@given(values)
def test_t_interval_is_scipys(xs):
    iv = stats.t_interval(xs)
    mean, sem = np.mean(xs), sp.sem(xs)
    if sem == 0:
        assert iv.lo == iv.hi == pytest.approx(mean)
        return
    lo, hi = sp.t.interval(0.95, len(xs) - 1, loc=mean, scale=sem)
    assert (iv.lo, iv.mean, iv.hi) == pytest.approx((lo, mean, hi), rel=1e-9, abs=1e-9)
    assert iv.std == pytest.approx(np.std(xs, ddof=1), rel=1e-9, abs=1e-12)
    assert (iv.n, iv.kind) == (len(xs), "t")


def test_no_interval_from_one_value():
    assert stats.t_interval([0.5]) is None and stats.t_interval([0.5, math.nan]) is None
    assert stats.bootstrap_interval([1.0]) is None


def _coverage(draw, mean: float, trials: int) -> float:
    rng = np.random.default_rng(7)
    hits = 0
    for i in range(trials):
        iv = stats.bootstrap_interval(draw(rng), resamples=1000, seed=i)
        hits += iv.lo <= mean <= iv.hi
    return hits / trials


def test_bootstrap_interval_covers_a_known_mean():
    """About 95 % of intervals hold the true mean (the percentile bootstrap covers a little
    less at small n; 300 trials put the share within ~±0.03 of its value)."""
    normal = _coverage(lambda rng: rng.normal(1.0, 2.0, 80), 1.0, 300)
    assert 0.90 <= normal <= 0.98, normal
    # right/wrong per image: the binomial shortcut of resampled means
    bernoulli = _coverage(lambda rng: (rng.random(500) < 0.9).astype(float), 0.9, 300)
    assert 0.90 <= bernoulli <= 0.98, bernoulli


def test_bootstrap_is_seeded_and_its_binomial_shortcut_matches_resampling():
    x = (np.arange(1000) % 10 != 0).astype(float)  # 90 % right
    a, b = stats.bootstrap_interval(x), stats.bootstrap_interval(x)
    assert a == b and a.kind == "bootstrap" and math.isnan(a.std)
    # the same data as non-binary floats takes the index-resampling path
    wide = stats.bootstrap_interval(x * 0.999999 + 1e-7)
    assert (a.lo, a.hi) == pytest.approx((wide.lo, wide.hi), abs=0.004)
    se = math.sqrt(0.9 * 0.1 / 1000)  # the normal approximation of the interval's half width
    assert (a.hi - a.lo) / 2 == pytest.approx(1.96 * se, rel=0.1)


def test_mcnemar_exact_against_a_hand_count():
    # 10 images: 6 only a gets right, 1 only b, 3 both: n01 = 6, n10 = 1
    a = [1, 1, 1, 1, 1, 1, 0, 1, 1, 1]
    b = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    hand = 2 * (comb(7, 0) + comb(7, 1)) / 2 ** 7  # = 0.125
    assert stats.mcnemar_exact(a, b) == pytest.approx(hand)
    assert stats.mcnemar_exact(b, a) == pytest.approx(hand)
    assert stats.mcnemar_exact(a, a) == 1.0
    # 3 against 3 discordant: the two-sided p caps at 1
    assert stats.mcnemar_exact([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]) == 1.0
    # 20 against 0: 2 / 2^20
    assert stats.mcnemar_exact([1] * 20, [0] * 20) == pytest.approx(2 / 2 ** 20)
    with pytest.raises(ValueError, match="one shape"):
        stats.mcnemar_exact([1, 0], [1])


@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(-10, 10)), min_size=2, max_size=20))
def test_paired_t_test_is_scipys(pairs):
    a, b = (np.array(v) for v in zip(*pairs))
    d = a - b
    p = stats.paired_t_test(a, b)
    if np.std(d) < 1e-9 * max(1.0, np.abs(d).max()):
        return  # scipy's own answer is not defined (or rounding) here
    assert p == pytest.approx(sp.ttest_rel(a, b).pvalue, rel=1e-6, abs=1e-12)


def test_paired_t_test_degenerate_cases():
    assert math.isnan(stats.paired_t_test([0.9], [0.8]))
    assert stats.paired_t_test([0.9, 0.8], [0.9, 0.8]) == 1.0
    assert stats.paired_t_test([0.9, 0.8], [0.8, 0.7]) == 0.0  # the same gap in every seed


@given(st.lists(st.floats(-5, 5), min_size=5, max_size=60), st.floats(-2, 2))
def test_paired_bootstrap_rejects_exactly_when_zero_is_outside_the_interval(noise, shift):
    d = np.array(noise) * 0.5 + shift
    b = np.zeros_like(d)
    p = stats.paired_bootstrap_test(d, b, resamples=400, seed=3)
    if np.all(d == d[0]):
        assert p == (1.0 if d[0] == 0 else 0.0)
        return
    means = stats._resampled_means(d, 400, np.random.default_rng(3))
    outside = (means > 0).all() or (means < 0).all()
    assert 0 <= p <= 1
    if outside:
        assert p == 0.0
    lo, hi = np.quantile(means, [0.025, 0.975])
    if p < 0.05:
        assert lo > 0 or hi < 0 or lo == 0 or hi == 0
    if lo > 0 or hi < 0:
        assert p <= 0.05


def test_paired_bootstrap_finds_a_real_shift_and_not_noise():
    rng = np.random.default_rng(1)
    a = rng.normal(0.3, 0.1, 256)
    assert stats.paired_bootstrap_test(a, a - 0.05) < 1e-3
    assert stats.paired_bootstrap_test(a, a + rng.normal(0, 1e-4, 256) * 0) == 1.0
    assert stats.paired_bootstrap_test(a, rng.permutation(a)) > 0.05


def test_rank_ranges_on_constructed_outcomes():
    none = np.zeros((3, 3), dtype=bool)
    assert stats.rank_ranges(none) == [(1, 3)] * 3  # nothing separated: any order
    chain = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)  # a > b > c, a > c
    assert stats.rank_ranges(chain) == [(1, 1), (2, 2), (3, 3)]
    ends = np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], dtype=bool)  # only a > c
    assert stats.rank_ranges(ends) == [(1, 2), (1, 3), (2, 3)]
    top = np.array([[0, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    assert stats.rank_ranges(top) == [(1, 1), (2, 4), (2, 4), (2, 4)]
    assert [stats.rank_label(lo, hi) for lo, hi in stats.rank_ranges(top)] == \
        ["1", "2–4", "2–4", "2–4"]
    assert stats.rank_label(math.nan, 2) == "—"
    with pytest.raises(ValueError, match="square"):
        stats.rank_ranges(np.zeros((2, 3), dtype=bool))


@given(st.lists(st.lists(st.integers(0, 5), min_size=3, max_size=3), min_size=1, max_size=8))
def test_rank_ranges_hold_every_order_that_agrees_with_the_tests(rows):
    """Random separations that a total order allows: the true position is within each range."""
    k = 3
    scores = np.array(rows, dtype=float).sum(axis=0) + np.arange(k) * 0.01
    order = np.argsort(-scores)
    pos = np.empty(k, dtype=int)
    pos[order] = np.arange(1, k + 1)
    rng = np.random.default_rng(len(rows))
    better = (scores[:, None] > scores[None, :]) & (rng.random((k, k)) < 0.5)
    for (lo, hi), p in zip(stats.rank_ranges(better), pos):
        assert lo <= p <= hi


def test_average_ranks_share_ties():
    ranks = stats.average_ranks(np.array([[0.9, 0.8, 0.8], [0.1, 0.2, 0.3]]))
    assert ranks.tolist() == [[1.0, 2.5, 2.5], [3.0, 2.0, 1.0]]
    assert stats.average_ranks(np.array([[1e-3, 1e-1]]), higher_is_better=False).tolist() == \
        [[1.0, 2.0]]


def test_nemenyi_critical_values_are_demsars_table():
    """Demšar (2006), table 5a: q_0.05 for k = 2..10."""
    table = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    assert [round(stats.nemenyi_q(k), 3) for k in range(2, 11)] == pytest.approx(table, abs=1e-3)
    # section 3.2.2: four methods on 14 datasets, CD = 2.569 sqrt(4·5 / (6·14)) = 1.25
    assert stats.nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.005)


def test_friedman_reproduces_demsars_example():
    """Section 3.2.2: average ranks 3.143, 2.000, 2.893, 1.964 on 14 datasets give
    χ²_F = 9.28 and F_F = 3.69."""
    res = stats.friedman_from_mean_ranks([3.143, 2.000, 2.893, 1.964], 14)
    assert res.chi2 == pytest.approx(9.28, abs=0.01)
    assert res.f == pytest.approx(3.69, abs=0.01)
    assert res.p_f < 0.05 and res.cd == pytest.approx(1.25, abs=0.005)


def test_friedman_without_ties_is_scipys():
    rng = np.random.default_rng(4)
    scores = rng.random((9, 5))
    res = stats.friedman(stats.average_ranks(scores))
    ref = sp.friedmanchisquare(*scores.T)
    assert res.chi2 == pytest.approx(ref.statistic) and res.p_chi2 == pytest.approx(ref.pvalue)
    with pytest.raises(ValueError, match="at least 2 datasets"):
        stats.friedman(np.ones((1, 3)))


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=6, max_size=60, unique=True))
def test_median_interval_is_scipys_quantile_test_interval(xs):
    """From six values on, the interval is the order-statistic interval of scipy's
    ``quantile_test`` at 95 %, and holds at least 95 % by its own account."""
    iv = stats.median_interval(xs)
    ci = sp.quantile_test(xs, p=0.5).confidence_interval(0.95)
    assert (iv.lo, iv.hi) == (ci.low, ci.high)
    assert iv.lo <= iv.median == np.median(xs) <= iv.hi and iv.n == len(xs)
    assert 0.95 <= iv.coverage < 1


@given(st.integers(1, 40))
def test_median_interval_coverage_is_the_binomial_count(n):
    """The interval is ``[x_(k), x_(n+1-k)]`` and its coverage the share of the ``2^n`` sign
    patterns with between ``k`` and ``n - k`` values below the median, counted by hand."""
    iv = stats.median_interval(list(range(n)))
    k = int(iv.lo) + 1  # the values are 0 .. n-1: x_(k) = k - 1
    assert iv.hi == n - k
    inside = sum(comb(n, j) for j in range(k, n - k + 1))
    assert iv.coverage == pytest.approx(inside / 2 ** n if n > 1 else 0.0, abs=1e-12)
    if n >= 6:  # the largest k that still reaches 95 %
        assert iv.coverage >= 0.95
        assert sum(comb(n, j) for j in range(k + 1, n - k)) / 2 ** n < 0.95
    else:  # no k reaches 95 %: the whole range, with its own coverage
        assert (iv.lo, iv.hi) == (0, n - 1) and iv.coverage < 0.95


def test_median_interval_covers_a_known_median():
    """On a skewed distribution (exponential, median ln 2) about 96 % of 9-value intervals
    hold the median: their stated coverage, within ~±0.03 over 400 trials."""
    rng = np.random.default_rng(3)
    ivs = [stats.median_interval(rng.exponential(1.0, 9)) for _ in range(400)]
    hits = np.mean([iv.lo <= math.log(2) <= iv.hi for iv in ivs])
    assert abs(hits - ivs[0].coverage) <= 0.03, (hits, ivs[0].coverage)
    assert stats.median_interval([]) is None and stats.median_interval([math.nan]) is None
