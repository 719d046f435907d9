"""The numbers of the report tables (``bench.report``) against independent computations
(scipy): means and 95% intervals, bold rows no test tells from the best, and rank ranges
that follow the pairwise tests.
"""

from __future__ import annotations

import base64
import math
import re
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from scaleqbench.bench.store.record import RunRecord

# board, data, experiments, made, perf_json, report: fixtures, found by pytest under these names
from report_support import board, data, experiments, made, N_TEST, perf_json, report


def _parse_markdown(md: str) -> dict[str, pd.DataFrame]:
    """Each ``## section`` table of leaderboard.md as a DataFrame of strings."""
    out, title, rows = {}, None, []
    for line in md.splitlines() + [""]:
        if line.startswith("## "):
            title, rows = line[3:], []
        elif line.startswith("|") and title:
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows and title:
            out[title] = pd.DataFrame(rows[2:], columns=rows[0])
            title, rows = None, []
    return out


def _num(cell: str) -> float:
    cell = cell.replace("**", "").replace(",", "")
    return math.nan if cell == "—" else float(cell)


def _interval(cell: str) -> tuple[float, float | None, float | None]:
    """``"**97.62 [95.27, 99.97]**"`` -> (97.62, 95.27, 99.97); no interval: None bounds."""
    cell = cell.replace("**", "").replace(",", " ")
    if cell == "—":
        return math.nan, None, None
    m = re.fullmatch(r"(\S+) \[(.*)\]", cell)
    assert m, cell
    if m.group(2) == "—":
        return float(m.group(1)), None, None
    lo, hi = m.group(2).split()
    return float(m.group(1)), float(lo), float(hi)


def _close(shown: float, value, scale: float, fmt: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.isnan(shown)
    # the cell shows the value rounded to its format: parse back, compare with that rounding
    return shown == float(format(scale * float(value), fmt))


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def _bits(rec: RunRecord, key: str) -> np.ndarray | None:
    """A record's per-image outcomes, decoded here (numpy's own bit order: the first image in
    the high bit)."""
    packed = (rec.per_image or {}).get(key)
    if not packed:
        return None
    n, payload = packed.split(":")
    return np.unpackbits(np.frombuffer(base64.b64decode(payload), np.uint8))[:int(n)]


#: (record field, display column, bits key, scale, top of its range, which way is better)
STAT_COLUMNS = [("test_acc", "test acc (%)", "test_correct", 100.0, 1.0, "max"),
                ("scale_consistency", "scale consist. (%)", "consistent", 100.0, 1.0, "max"),
                ("eq_err", "equiv. err", None, 1.0, math.inf, "min"),
                ("logit_inv_err", "logit inv. err", None, 1.0, math.inf, "min")]


def _expected_interval(ok: list[RunRecord], field: str, key: str | None, top: float):
    """(lo, hi) by scipy over seeds, "bootstrap" for one run with per-image outcomes, None
    without an interval."""
    values = [getattr(r, field) for r in ok if getattr(r, field) is not None]
    if len(values) >= 2:
        if sp.sem(values) == 0:  # seeds that agree exactly: no width (scipy says NaN)
            return np.mean(values), np.mean(values)
        lo, hi = sp.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                               scale=sp.sem(values))
        return max(lo, 0.0), min(hi, top)
    if len(values) == 1 and key and _bits(ok[0], key) is not None:
        return "bootstrap"
    return None


def _expected_rows(records: list[RunRecord]) -> list[dict]:
    """The leaderboard rows of one section, computed here from the hand-made records:
    per method, means and intervals over its ok runs, sorted by accuracy."""
    rows = []
    for method in dict.fromkeys(r.method for r in records):
        runs = [r for r in records if r.method == method]
        ok = [r for r in runs if r.status == "ok"]
        row = {"method": method, "runs": len(runs), "failed": len(runs) - len(ok), "ok": ok,
               "params": ok[0].params if ok else None,
               "train_time_s": _mean([r.train_time_s for r in ok]),
               "infer_img_per_s": _mean([r.infer_img_per_s for r in ok])}
        for field, _, key, _, top, _ in STAT_COLUMNS:
            row[field] = _mean([getattr(r, field) for r in ok])
            row[f"{field}_ci"] = _expected_interval(ok, field, key, top)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["test_acc"] is None, -(r["test_acc"] or 0)))


def _check_interval(shown: str, row: dict, field: str, scale: float, fmt: str) -> None:
    mean, lo, hi = _interval(shown)
    assert _close(mean, row[field], scale, fmt), (shown, row[field])
    want = row[f"{field}_ci"]
    if want is None:
        assert lo is None and hi is None, shown
    elif want == "bootstrap":  # over N_TEST images: about ± 1.96 sqrt(p (1 - p) / n)
        p = row[field]
        assert lo <= mean <= hi
        assert (hi - lo) / 2 == pytest.approx(scale * 1.96 * math.sqrt(p * (1 - p) / N_TEST),
                                              rel=0.3)
    else:
        bound_fmt = ".2f" if scale == 100 else ".1e"
        assert lo == pytest.approx(float(format(scale * want[0], bound_fmt)), abs=1e-12)
        assert hi == pytest.approx(float(format(scale * want[1], bound_fmt)), abs=1e-12)


def test_markdown_numbers_equal_independent_means_and_intervals(report, made):
    out, _ = report
    parsed = _parse_markdown((out / "leaderboard.md").read_text())
    assert {"mnist-res (source embedded, preset quick, epochs 3)",
            "stl10-res (source embedded, preset quick, epochs 3)",
            "mnist-scale (source torchvision, preset quick, epochs 3)"} <= set(parsed)
    checked = 0
    for records in made.values():
        r0 = records[0]
        table = parsed[f"{r0.dataset} (source {r0.source}, preset quick, epochs 3)"]
        expected = _expected_rows(records)
        assert list(table.method) == [e["method"] for e in expected]  # same rows, same order
        for (_, row), ref in zip(table.iterrows(), expected):
            for field, column, _, scale, _, _ in STAT_COLUMNS:
                _check_interval(row[column], ref, field, scale, ".2f" if scale == 100 else ".2e")
            assert _close(_num(row["params"]), ref["params"], 1, ".0f")
            assert _close(_num(row["train time (s)"]), ref["train_time_s"], 1, ".1f")
            assert _close(_num(row["infer (img/s)"]), ref["infer_img_per_s"], 1, ".0f")
            # quick-preset runs are not the protocol of any published figure: none beside them
            assert "published acc (%)" not in table and "Δ acc (pp)" not in table
            assert row["runs"] == f"{ref['runs']} run{'s' * (ref['runs'] != 1)}, " \
                                  f"{ref['failed']} failed"
            checked += 1
    assert checked == sum(len(_expected_rows(rs)) for rs in made.values())


def _p_value(a: list[RunRecord], b: list[RunRecord], field: str, key: str | None) -> float | None:
    """The paired test of the leaderboard, by scipy: over the seeds both ran (two or more), else
    McNemar's exact test (a binomial test of the discordant images) on their one shared seed."""
    va = {r.seed: getattr(r, field) for r in a if getattr(r, field) is not None}
    vb = {r.seed: getattr(r, field) for r in b if getattr(r, field) is not None}
    common = sorted(set(va) & set(vb))
    if len(common) >= 2:
        return sp.ttest_rel([va[s] for s in common], [vb[s] for s in common]).pvalue
    if len(common) == 1 and key:
        x, y = (_bits(next(r for r in rs if r.seed == common[0]), key) for rs in (a, b))
        if x is not None and y is not None:
            n01, n10 = int((x & (1 - y)).sum()), int(((1 - x) & y).sum())
            return 1.0 if n01 + n10 == 0 else sp.binomtest(n01, n01 + n10, 0.5).pvalue
    return None


def test_rows_no_test_tells_from_the_best_are_bold(report, made, board):
    out, _ = report
    parsed = _parse_markdown((out / "leaderboard.md").read_text())
    for records in made.values():
        r0 = records[0]
        table = parsed[f"{r0.dataset} (source {r0.source}, preset quick, epochs 3)"]
        expected = _expected_rows(records)
        for field, column, key, _, _, better in STAT_COLUMNS:
            valued = [e for e in expected if e[field] is not None]
            best = (max if better == "max" else min)(valued, key=lambda e: e[field])
            for (_, row), e in zip(table.iterrows(), expected):
                if e is best:
                    bold = True
                elif e[field] is None:
                    bold = False
                else:
                    p = _p_value(best["ok"], e["ok"], field, key)
                    bold = p is not None and p >= 0.05
                assert row[column].startswith("**") == bold, (r0.dataset, e["method"], column)
    # one seed of an exactly equivariant variant leads the equivariance error; nothing shares
    # a seed pair with it, and no record holds per-image errors: only it is bold
    res = parsed["mnist-res (source embedded, preset quick, epochs 3)"]
    assert list(res.method[res["equiv. err"].str.startswith("**")]) == ["fourier[impl=reference]"]
    # every failed run is counted, none averaged in
    sec = board[board.dataset == "mnist-res"].set_index("method")
    assert sec.at["si_convnet", "failed"] == 1 and math.isnan(sec.at["si_convnet", "test_acc_mean"])
    assert sec.at["dss", "runs"] == 2 and sec.at["dss", "failed"] == 1
    assert res.set_index("method").at["si_convnet", "rank"] == "—"


def test_rank_ranges_follow_the_pairwise_tests(report, made):
    out, _ = report
    parsed = _parse_markdown((out / "leaderboard.md").read_text())
    res = parsed["mnist-res (source embedded, preset quick, epochs 3)"].set_index("method")
    expected = [e for e in _expected_rows(made[next(iter(made))]) if e["test_acc"] is not None]
    assert res.at["disco", "rank"] == "—"
    assert sum(r != "—" for r in res["rank"]) >= 4
    for e in expected:
        others = [o for o in expected if o is not e]
        tests = [(o, _p_value(e["ok"], o["ok"], "test_acc", "test_correct")) for o in others]
        if all(p is None for _, p in tests):  # disco holds no per-image outcomes
            assert res.at[e["method"], "rank"] == "—"
            continue
        # a pair no test can compare (disco's) is not separated
        tests = [(o, p) for o, p in tests if p is not None]
        better = sum(p < 0.05 and o["test_acc"] > e["test_acc"] for o, p in tests)
        worse = sum(p < 0.05 and o["test_acc"] < e["test_acc"] for o, p in tests)
        lo, hi = 1 + better, len(expected) - worse
        assert res.at[e["method"], "rank"] == (str(lo) if lo == hi else f"{lo}–{hi}")
