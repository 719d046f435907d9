"""The report (``bench.report``): tables, figures and the HTML page from synthetic records.

The records cover what real sweeps produce: several datasets and sources, failed
runs, missing metrics, a single seed, a method in one dataset only, a method
variant, float-precision equivariance errors (and an exact zero), per-image
outcomes (and a record without them). The numbers, intervals and ties of the
tables are checked against independent computations (scipy), the page in a
headless Chromium at 1280 x 800.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
import statistics
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from scaleqbench.bench.errors import NoRecordsError
from scaleqbench.bench.store.per_image import pack_bits
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.report import build_report, plots, tables
from scaleqbench.bench.report.data import (
    eq_frame,
    eq_ops_frame,
    load,
    load_published,
    per_size_frame,
)
from scaleqbench.bench.report.html import experiment_commands
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.spec_parsing import parse_method

SIZES = {"mnist-res": [str(s) for s in range(8, 29, 4)], "stl10-res": ["49", "65", "81", "97"],
         "mnist-scale": [f"{b / 10:.1f}-{(b + 1) / 10:.1f}" for b in range(3, 10)]}
# the equivariance error is always measured at pixel sizes, scale-bin protocols included
EQ_SIZES = {**SIZES, "mnist-scale": SIZES["mnist-res"]}
#: test images of the hand-made records (their per-image outcomes)
N_TEST = 200


def make_record(method: str, dataset: str, seed: int, *, experiment: str, status: str = "ok",
                source: str = "embedded", acc: float = 0.9, eq: float = 0.3,
                missing: tuple[str, ...] = (), command: list[str] | str | None = None
                ) -> RunRecord:
    """A record shaped like ``bench.train.run_one``'s, with seeded noise."""
    rng = np.random.default_rng(zlib.crc32(f"{method}/{dataset}/{seed}".encode()))
    name, kwargs = parse_method(method)
    # the published input handling, as bench run resolves it by default
    policy = "native" if dataset == "mnist-scale" or name == "fourier" else "pad"
    spec = RunSpec(name, dataset=dataset, source=source, seed=seed, preset="quick", epochs=3,
                   method_kwargs=tuple(sorted(kwargs.items())), experiment=experiment,
                   input=policy)
    rec = RunRecord.for_spec(
        spec, versions={"torch": "2.4.0", "python": "3.11.7", "git": "abc1234"},
        status=status, device="cpu (x86_64)", command=command,
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
        history=[{"epoch": e, "train_loss": 2.0 / e + 0.01 * seed, "train_acc": 0.5,
                  "val_acc": min(1.0, acc - 0.2 / e), "lr": 0.01, "time_s": 2.0 * e}
                 for e in range(1, 4)])
    if status != "ok":
        rec.set(error="Traceback (most recent call last):\n  ...\nRuntimeError: loss is nan",
                history=rec.history[:2])
        return rec
    # per test image right or wrong (test_acc is their mean), and consistent or not
    right = rng.random(N_TEST) < float(np.clip(acc + rng.normal(0, 0.01), 0, 1))
    consistent = rng.random(N_TEST) < 0.9 * right.mean()
    test_acc = float(right.mean())
    layers = {f"block{i}": {s: float(eq * i * rng.uniform(0.5, 1.5)) for s in EQ_SIZES[dataset]}
              for i in (1, 2, 3)}
    layers["logits"] = {s: float(eq * 2 * rng.uniform(0.5, 1.5)) for s in EQ_SIZES[dataset]}
    if eq == 0.0:  # an exactly equivariant model: exact zeros a log axis cannot show
        layers = {k: {s: 0.0 for s in v} for k, v in layers.items()}
    rec.set(params=10_000 + 1000 * len(name), epochs=3, val_acc=acc, test_acc=test_acc,
            per_size_acc={s: float(np.clip(test_acc + rng.normal(0, 0.02), 0, 1))
                          for s in SIZES[dataset]},
            scale_consistency=float(consistent.mean()), equivariance_error=layers,
            per_image={"test_correct": pack_bits(right), "consistent": pack_bits(consistent)},
            eq_err=float(np.mean(list(layers["block3"].values()))),
            logit_inv_err=float(np.mean(list(layers["logits"].values()))),
            train_time_s=10.0 + seed + len(name), train_img_per_s=300.0,
            infer_img_per_s=1000.0 / len(name), peak_mem_mb=500.0)
    for key in missing:  # a metric the run did not record: the field's empty value
        rec.set(**{key: type(getattr(rec, key))() if isinstance(getattr(rec, key), (dict, list))
                   else None})
    return rec


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[Path, list[RunRecord]]:
    """The hand-made records of each experiment folder (written there)."""
    root = tmp_path_factory.mktemp("report-records")
    res, stl, scale = root / "res", root / "stl", root / "scale"
    cmd = ["bench", "run", "--methods", "cnn,fourier", "--dataset", "stl10-res", "--out", str(stl)]
    recs = {res: [], stl: [], scale: []}
    for s in (0, 1, 2):
        recs[res].append(make_record("cnn", "mnist-res", s, experiment="res", acc=0.95, eq=0.4))
        recs[res].append(make_record("fourier", "mnist-res", s, experiment="res", acc=0.97,
                                     eq=1e-30 * (1 + s)))  # float precision
    recs[res] += [
        make_record("fourier[impl=reference]", "mnist-res", 0, experiment="res", acc=0.96, eq=0.0),
        make_record("sesn", "mnist-res", 0, experiment="res", acc=0.96, eq=0.05),  # one seed
        make_record("dss", "mnist-res", 0, experiment="res", acc=0.93, eq=0.02),
        make_record("dss", "mnist-res", 1, experiment="res", status="failed"),
        make_record("si_convnet", "mnist-res", 0, experiment="res", status="failed"),  # all failed
        make_record("disco", "mnist-res", 0, experiment="res", acc=0.94, missing=(
            "equivariance_error", "eq_err", "logit_inv_err", "scale_consistency", "per_size_acc",
            "history", "infer_img_per_s", "per_image")),  # an older record: no per-image data
    ]
    for s in (0, 1):
        # bench run records its command line as a string; an argv list is understood too
        recs[stl].append(make_record("cnn", "stl10-res", s, experiment="stl", acc=0.55, eq=0.2,
                                     command=" ".join(cmd)))
        recs[stl].append(make_record("fourier", "stl10-res", s, experiment="stl", acc=0.70,
                                     eq=1e-20, command=cmd))
    recs[stl].append(make_record("sevf", "stl10-res", 0, experiment="stl", acc=0.5, eq=0.1,
                                 command=cmd))  # a method of one dataset only
    for s in (0, 1):
        for m, a in (("cnn", 0.97), ("sesn", 0.98)):
            recs[scale].append(make_record(m, "mnist-scale", s, experiment="scale", acc=a,
                                           source="torchvision", eq=0.1))
    for folder, rs in recs.items():
        for r in rs:
            RunStore(folder).write(r)
    return recs


@pytest.fixture(scope="module")
def experiments(made) -> list[Path]:
    return list(made)


@pytest.fixture(scope="module")
def perf_json(tmp_path_factory) -> Path:
    from scaleqbench.bench.run.perf import write_perf_json

    rows = [{"method": m, "size": s, "batch": b, "params": 1000, "train_step_s": 0.01 * s * k,
             "infer_img_per_s": 1e4 / (s * k), "peak_mem_mb": 100.0 if m != "sesn" else math.nan,
             "device": "cpu"}
            for k, m in enumerate(["cnn", "fourier", "sesn"], 1) for s in (8, 16, 28)
            for b in (32, 64)]
    return write_perf_json(rows, tmp_path_factory.mktemp("perf") / "perf.json")


@pytest.fixture(scope="module")
def report(experiments, perf_json, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report")
    return out, build_report(experiments, out, perf_json=perf_json)


@pytest.fixture(scope="module")
def data(experiments, perf_json):
    return load(experiments, perf_json=perf_json)


@pytest.fixture(scope="module")
def board(data) -> pd.DataFrame:
    return tables.leaderboard(data)


def test_report_files(report):
    out, written = report
    names = {p.relative_to(out).as_posix() for p in written}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.tex", "index.html"} <= names
    for kind in ("acc_vs_size", "eq_vs_size", "eq_per_layer", "acc_vs_eq", "learning_curves"):
        for section in ("mnist-res-embedded-quick-epochs3", "stl10-res-embedded-quick-epochs3",
                        "mnist-scale-torchvision-quick-epochs3"):
            assert f"figures/{kind}-{section}.png" in names
            assert f"figures/{kind}-{section}.pdf" in names
    assert "figures/training_cost.png" in names
    for p in written:
        assert p.is_file() and p.stat().st_size > 0, p
    assert all(p.read_bytes().startswith(b"%PDF") for p in written if p.suffix == ".pdf")


def test_no_records_is_a_clear_error(tmp_path):
    with pytest.raises(NoRecordsError, match="no run records"):
        build_report([tmp_path], tmp_path / "out")


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


def _paper_record(method: str, dataset: str, seed: int, acc: float, **protocol) -> RunRecord:
    """A finished run of the published protocol (full data, paper preset), or of one changed
    by ``protocol`` (spec fields)."""
    name, kwargs = parse_method(method)
    policy = "native" if name == "fourier" else "pad"
    spec = RunSpec(**{"method": name, "dataset": dataset, "source": "torchvision", "seed": seed,
                      "preset": "paper", "method_kwargs": tuple(sorted(kwargs.items())),
                      "experiment": "paper", "input": policy, **protocol})
    return RunRecord.for_spec(spec, versions={}, status="ok", device="cpu").set(
        params=1, test_acc=acc, scale_consistency=acc - 0.1, eq_err=0.1)


def test_published_column_only_beside_the_published_protocol(tmp_path):
    pub = load_published()
    assert {"mnist-res", "stl10-res-pooled"} <= set(pub.dataset)
    assert pub.source.str.contains("Rahman").all()
    folder = tmp_path / "paper"
    records = [_paper_record("fourier", "mnist-res", s, 0.98 + 0.002 * s) for s in (0, 1)]
    records += [_paper_record("fourier[impl=reference]", "mnist-res", 0, 0.97),
                _paper_record("cnn", "stl10-res-pooled", 0, 0.6),
                _paper_record("cnn", "mnist-res", 0, 0.95, limit_train=5000),  # 5,000 column
                _paper_record("cnn", "mnist-res", 0, 0.95, epochs=2),  # not the recipe's
                _paper_record("cnn", "mnist-res", 1, 0.95, input="native"),  # not as published
                _paper_record("cnn", "mnist-res", 2, 0.95, limit_train=4000)]  # no such column
    for r in records:
        RunStore(folder).write(r)
    board = tables.leaderboard(load([folder]))
    row = board[(board.dataset == "mnist-res") & (board.method == "fourier")].iloc[0]
    assert row.published_acc == pytest.approx(0.9889)
    assert row.delta_acc == pytest.approx(row.test_acc_mean - 0.9889)
    variant = board[board.method == "fourier[impl=reference]"].iloc[0]
    assert variant.published_acc == pytest.approx(0.9889)  # a variant compares to its method
    stl = board[(board.dataset == "stl10-res-pooled") & (board.method == "cnn")].iloc[0]
    assert stl.published_acc == pytest.approx(0.5596)
    # the paper's equivariance values are the authors' own measure (eq_err_rahman_yeh), not
    # our eq_err: never set beside it
    assert math.isnan(stl.published_eq_err)
    cnn = board[(board.dataset == "mnist-res") & (board.method == "cnn")]
    five_k = cnn[[p.limit_train == 5000 for p in cnn.protocol]].iloc[0]
    assert five_k.published_acc == pytest.approx(0.9432)  # the 5,000-image column's figure
    others = cnn[[p.limit_train != 5000 for p in cnn.protocol]]
    assert len(others) == 3 and others.published_acc.isna().all()


def test_quick_and_embedded_runs_get_no_published_column(board, data):
    assert board.published_acc.isna().all() and board.published_eq_err.isna().all()
    notes = " ".join(tables.table_notes(data, board))
    assert "shown only beside runs of their full protocol" in notes
    assert "Source embedded" in notes


def test_csv_and_latex(report, board):
    out, _ = report
    csv = pd.read_csv(out / "leaderboard.csv")
    assert len(csv) == len(board)
    assert np.allclose(csv.test_acc_mean, board.test_acc_mean, equal_nan=True)
    assert csv.loc[csv.method == "fourier[impl=reference]", "best"].str.contains("eq_err").all()
    # every metric's interval, the seeds' std, the rank range and what is bold
    for col in ("test_acc_lo", "test_acc_hi", "test_acc_std", "scale_consistency_lo",
                "scale_consistency_hi", "eq_err_lo", "eq_err_hi", "eq_err_std",
                "logit_inv_err_lo", "logit_inv_err_hi", "n_seeds", "rank_lo", "rank_hi", "tied"):
        assert col in csv, col
    three = csv[(csv.method == "cnn") & (csv.dataset == "mnist-res")].iloc[0]
    assert three.n_seeds == 3 and three.test_acc_ci == "t" and three.eq_err_lo <= three.eq_err
    one = csv[(csv.method == "sesn") & (csv.dataset == "mnist-res")].iloc[0]
    assert one.test_acc_ci == "bootstrap" and math.isnan(one.eq_err_lo)
    valued = csv[csv.test_acc_lo.notna()]
    assert len(valued) >= 8 and (valued.test_acc_lo <= valued.test_acc_mean).all()
    assert (valued.test_acc_mean <= valued.test_acc_hi).all()
    tex = (out / "leaderboard.tex").read_text()
    assert tex.count("\\toprule") == 1 and tex.count("\\bottomrule") == 1
    assert tex.count("\\midrule") == 3 and "\\begin{tabular}" in tex and "\\end{tabular}" in tex
    body = "\n".join(ln for ln in tex.splitlines() if not ln.startswith("%"))
    assert "si\\_convnet" in body and "\\textbf{" in body
    assert re.search(r"\d \[\d[\d.]*, \d", body) and "\\times 10^{" in body  # intervals
    assert "–" not in body  # a rank range's dash as LaTeX's --
    assert body.count("{") == body.count("}") and body.count("$") % 2 == 0


def _lines(ax) -> list[str]:
    return [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def test_plots_have_content(data, board):
    palette = plots.Palette(list(data.runs.method))
    res = per_size_frame(data.records)
    res = res[res.dataset == "mnist-res"]
    fig = plots.acc_vs_size(res, palette, "mnist-res")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "test image size (px)" and ax.get_ylabel() == "test accuracy (%)"
    assert sorted(_lines(ax)) == sorted(res.method.unique())  # one line per method with data
    assert "disco" not in _lines(ax)  # it recorded no per-size accuracy
    scale = per_size_frame(data.records)
    fig = plots.acc_vs_size(scale[scale.dataset == "mnist-scale"], palette, "mnist-scale")
    assert fig.axes[0].get_xlabel() == "object scale (bin centre)"

    eq = eq_frame(data.records)
    fig = plots.eq_vs_size(eq[eq.dataset == "mnist-res"], palette, "mnist-res")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "equivariance error"
    assert sorted(_lines(ax)) == ["cnn", "dss", "fourier", "fourier[impl=reference]", "sesn"]
    lo, hi = ax.get_ylim()
    fourier = ax.get_lines()[_lines(ax).index("fourier")].get_ydata()
    assert lo < min(fourier) and min(fourier) < 1e-28 and hi > 1  # float precision is visible
    exact = ax.get_lines()[_lines(ax).index("fourier[impl=reference]")].get_ydata()
    assert np.all(exact > lo) and np.all(exact < min(fourier))  # exact zero drawn on the floor
    fig = plots.eq_per_layer(eq[eq.dataset == "mnist-res"], palette, "mnist-res")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["1", "2", "3", "logits"] and len(_lines(fig.axes[0])) == 5


def test_colour_and_marker_fixed_per_method(data, board):
    palette = plots.Palette(list(data.runs.method))
    styles = {}
    eq = eq_frame(data.records)
    res = board[board.dataset == "mnist-res"]
    for fig in (plots.eq_vs_size(eq[eq.dataset == "mnist-res"], palette, "t"),
                plots.acc_vs_eq(res, palette, "t")):
        for ln in fig.axes[0].get_lines():
            if not ln.get_label().startswith("_") and ln.get_label() != "Pareto front":
                seen = styles.setdefault(ln.get_label(), (ln.get_color(), ln.get_marker()))
                assert seen == (ln.get_color(), ln.get_marker()), ln.get_label()
    # the style is a function of the name: another report draws a method the same way
    alone, mixed = plots.Palette(["zz_new"]), plots.Palette(["zz_new", "cnn"])
    assert alone.style("zz_new") == mixed.style("zz_new")
    assert plots.Palette().style("fourier") == plots.Palette(["a", "b"]).style("fourier")
    # a variant: its method's marker, hollow, a lighter tint of its colour, another line style
    base, variant = palette.style("fourier"), palette.style("fourier[impl=reference]")
    assert variant.marker == base.marker and variant.hollow and not base.hollow
    assert variant.color != base.color and base.linestyle != variant.linestyle
    lighter = [int(variant.color[i:i + 2], 16) >= int(base.color[i:i + 2], 16) for i in (1, 3, 5)]
    assert all(lighter)
    # no two methods of a report are drawn alike
    labels = sorted(set(data.runs.method))
    drawn = {(palette.style(m).color, palette.style(m).marker) for m in labels}
    assert len(drawn) == len(labels)


def test_pareto_front_and_scatter(board):
    assert plots.pareto_front([0.1, 0.2, 0.05, 0.3], [0.9, 0.95, 0.8, 0.94]) == [2, 0, 1]
    res = board[board.dataset == "mnist-res"]
    fig = plots.acc_vs_eq(res, plots.Palette(list(res.method)), "mnist-res")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "equivariance error" in ax.get_xlabel()
    assert "Pareto front" in _lines(ax)
    handles, labels = ax.get_legend_handles_labels()
    with_both = res[res.test_acc_mean.notna() & res.eq_err.notna()]
    assert sorted(set(labels) - {"Pareto front"}) == sorted(with_both.method)


def test_learning_curves_and_perf(data, perf_json):
    from scaleqbench.bench.report.data import history_frame, load_perf

    hist = history_frame(data.records)
    fig = plots.learning_curves(hist[hist.dataset == "mnist-res"], plots.Palette(), "mnist-res")
    loss_ax, acc_ax = fig.axes[:2]
    assert loss_ax.get_ylabel() == "train loss" and acc_ax.get_ylabel() == "validation accuracy (%)"
    assert loss_ax.get_xlabel() == "epoch"
    assert "si_convnet (failed)" in _lines(loss_ax)  # a failed run's curve is still shown
    assert "cnn" in _lines(acc_ax)
    fig = plots.perf_cost(load_perf(perf_json), plots.Palette())
    assert sorted(_lines(fig.axes[0])) == ["cnn", "fourier", "sesn"]
    assert fig.axes[0].get_xlabel() == "input size (px)" and fig.axes[0].get_yscale() == "log"
    assert fig.axes[2].get_ylabel() == "peak memory (MiB)"
    assert sorted(_lines(fig.axes[2])) == ["cnn", "fourier"]  # sesn: no memory reading
    assert plots.perf_cost(load_perf(perf_json.parent / "absent.json"), plots.Palette()) is None
    bare = perf_json.parent / "bare.json"  # a bare list of rows is read too
    bare.write_text(json.dumps(json.loads(perf_json.read_text())["rows"]))
    assert len(load_perf(bare)) == len(load_perf(perf_json)) == 18


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def test_html_is_self_contained(report, experiments):
    out, _ = report
    page = (out / "index.html").read_text()
    parser = _Refs()
    parser.feed(page)
    images = [r for r in parser.refs if r.startswith("data:image/png;base64,")]
    # 5 figures x 3 sections, the 2 small multiples x 3 sections (each of several families)
    # and the training cost: every PNG written is on the page
    assert len(images) == 22 == len(list((out / "figures").glob("*.png")))
    for img in images:
        assert base64.b64decode(img.split(",", 1)[1]).startswith(b"\x89PNG")
    for ref in parser.refs:
        assert not re.match(r"(https?:)?//", ref), ref  # nothing from the network
        if not ref.startswith(("data:", "#")):
            assert (out / unquote(ref)).resolve().is_file(), ref  # links resolve
    records = [r for r in parser.refs if r.endswith(".json")]
    assert len(records) == sum(len(list((f / "runs").glob("*.json"))) for f in experiments)
    assert "bench run --methods cnn,fourier --dataset stl10-res" in page  # recorded command
    assert "rebuilt from the records" in page and "abc1234" in page


def test_commands_rebuilt_from_specs(data):
    res = data.experiments[0]
    cmd, recorded = experiment_commands(res)[0]
    assert not recorded
    assert cmd.startswith("bench run --methods ") and "--dataset mnist-res" in cmd
    assert "--epochs 3" in cmd and "--out " in cmd
    # one command per seed set, so that re-running it makes exactly these runs
    cmds = [c for c, _ in experiment_commands(res)]
    assert "bench run --methods cnn,fourier --dataset mnist-res --seeds 0,1,2" in cmds[0]
    assert any("'disco,fourier[impl=reference],sesn,si_convnet'" in c and "--seeds 0 " in c
               for c in cmds)
    (cmd, recorded), = experiment_commands(data.experiments[1])
    assert recorded and cmd.startswith("bench run --methods cnn,fourier")


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


_BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--window-size=1280,800"]

#: measures the page as laid out (the report itself has no scripts: added to a copy of it)
_PROBE = """<script>
addEventListener('load', () => {
  const d = document.documentElement;
  const box = e => e ? e.getBoundingClientRect().toJSON() : null;
  const keys = [...document.querySelectorAll('.board .key')].map(k => {
    const path = k.querySelector('path');
    return {method: k.dataset.method, color: k.dataset.color, marker: k.dataset.marker,
            fill: k.dataset.fill, stroke: getComputedStyle(path).stroke};
  });
  const heads = [...document.querySelectorAll('.board table th')].map(
    th => [th.textContent, th.getAttribute('title') || '']);
  const runs = document.querySelector('.runs');
  const boards = [...document.querySelectorAll('.board .scroll')].map(
    b => [b.scrollWidth, b.clientWidth]);
  const out = {scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, keys, heads,
    glossary: [...document.querySelectorAll('#glossary dt')].map(dt => dt.textContent),
    glossaryBox: box(document.querySelector('#glossary')),
    tableBox: box(document.querySelector('.board .scroll')), boards,
    runsOverflow: runs ? getComputedStyle(runs).overflowX : null, runsBox: box(runs)};
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _probe(browser: str, page: Path, tmp_path: Path) -> dict:
    """The page laid out at 1280 x 800 in headless Chromium, measured by :data:`_PROBE`."""
    probed = page.with_name("probe.html")  # beside the page: its links resolve the same
    probed.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    try:
        proc = subprocess.run([browser, *_BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'p2'}",
                               "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        probed.unlink()
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    return json.loads(html.unescape(m.group(1)))


def _rgb(color: str) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_html_in_headless_chromium(report, tmp_path):
    """At 1280 x 800: no console message, a page that does not overflow sideways, every method
    with a distinct (colour, marker) beside its name, the glossary beside the tables and a
    tooltip on each column header."""
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed; run `sh tests/browser/install-chromium.sh`")
    out, _ = report
    shot = tmp_path / "page.png"
    proc = subprocess.run(
        [browser, *_BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
         (out / "index.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    # the page has no scripts: any console message (an error, a blocked load) is a fault
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], console
    assert shot.is_file(), proc.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (800, 1280)
    non_white = (pixels < 0.95).any(axis=-1).mean()
    assert 0.01 < non_white < 0.9, non_white  # text and tables, not a blank page
    assert pixels.std() > 0.05

    found = _probe(browser, (out / "index.html").resolve(), tmp_path)
    assert found["scrollWidth"] <= found["clientWidth"] <= 1280, found  # no sideways overflow
    styles: dict[str, tuple[str, str, str]] = {}
    for key in found["keys"]:
        style = (key["color"].lower(), key["marker"], key["fill"])
        assert styles.setdefault(key["method"], style) == style  # one style per method
        assert key["stroke"] == _rgb(key["color"])  # drawn in the colour it says
    assert len(styles) >= 8
    pairs = {(c, m) for c, m, _ in styles.values()}
    assert len(pairs) == len(styles), styles  # every method its own (colour, marker)
    # every leaderboard table fits its box (nothing to scroll to) and the glossary is beside
    # it, defining every column it has an entry for
    assert all(width <= box for width, box in found["boards"]), found["boards"]
    glossary, table = found["glossaryBox"], found["tableBox"]
    assert glossary and glossary["left"] >= table["right"] - 1
    assert glossary["top"] < table["bottom"] and glossary["right"] <= found["clientWidth"]
    for term in ("test acc (%)", "scale consist. (%)", "equiv. err", "logit inv. err", "rank",
                 "runs", "[a, b]", "bold"):
        assert term in found["glossary"], term
    untitled = sorted({text for text, title in found["heads"] if not title})
    assert untitled == [], untitled
    # the per-run tables scroll inside their box
    assert found["runsOverflow"] == "auto" and found["runsBox"]["right"] <= found["clientWidth"]


def test_page_keys_glossary_and_tooltips(report, data):
    """Without a browser: the keys beside the methods are the figures' styles, each column
    header of the leaderboard has its tooltip, failed runs read as such."""
    out, _ = report
    page = (out / "index.html").read_text()
    palette = plots.Palette(list(data.runs.method))
    for method, color, marker, fill in re.findall(
            r'class="key" data-method="([^"]+)" data-color="([^"]+)" data-marker="([^"]+)" '
            r'data-fill="([^"]+)"', page):
        method = html.unescape(method)
        style = palette.style(method)
        assert (color, marker, fill) == (style.color, style.marker,
                                         "none" if style.hollow else "full"), method
    assert '<th title="Scale consistency: the share of test images' in page
    assert 'id="glossary"' in page and "1&nbsp;run, 1&nbsp;failed" in page
    assert "3&nbsp;runs, 0&nbsp;failed" in page
    assert page.index('id="glossary"') < page.index("<figure")  # beside the tables, not after


def test_small_multiples_one_panel_per_family(data):
    palette = plots.Palette(list(data.runs.method))
    res = per_size_frame(data.records)
    res = res[res.dataset == "mnist-res"]
    fig = plots.acc_vs_size_by_family(res, palette, "mnist-res")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["baseline", "fourier", "scale-equivariant"]
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert sorted(_lines(panels["fourier"])) == ["fourier", "fourier[impl=reference]"]
    assert sorted(_lines(panels["scale-equivariant"])) == ["dss", "sesn"]
    # the other families behind each panel's own, thin and grey, without a legend entry
    grey = [ln for ln in panels["baseline"].get_lines() if ln.get_color() == "#CCCCCC"]
    assert len(grey) == len(set(res.method)) - 1
    eq = eq_frame(data.records)
    fig = plots.eq_vs_size_by_family(eq[eq.dataset == "mnist-res"], palette, "mnist-res")
    assert len(fig.axes) == 2 * 3  # last spatial layer and logits, three families
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    one = res[res.method.isin(["sesn", "dss"])]
    assert plots.acc_vs_size_by_family(one, palette, "x") is None  # one family: no need


def test_bands_are_the_95_percent_interval_over_seeds(data):
    """The band of a line is the Student t interval of the mean at each point."""
    palette = plots.Palette(list(data.runs.method))
    res = per_size_frame(data.records)
    res = res[(res.dataset == "mnist-res") & (res.method == "cnn")]
    fig = plots.acc_vs_size(res, palette, "cnn")
    (band,) = fig.axes[0].collections
    at = res[res.x == res.x.min()].acc
    lo, hi = sp.t.interval(0.95, len(at) - 1, loc=at.mean(), scale=sp.sem(at))
    ys = band.get_paths()[0].vertices[:, 1]
    assert np.isclose(ys, 100 * lo).any() and np.isclose(ys, 100 * hi).any()


def test_equivariance_per_operator_figure():
    """Records holding ``scale-shift`` beside ``ideal`` get one panel per operator; a lifted
    layer's shifted error is its own line, not a copy of the ideal one."""
    records = []
    for method in ("cnn", "sesn_vector"):
        rec = make_record(method, "mnist-res", 0, experiment="ops")
        shifted = {k: dict(v) for k, v in rec.equivariance_error.items()}
        if method == "sesn_vector":
            shifted["block1"] = {"16": 0.01}
        records.append(rec.set(equivariance_error_ops={"scale-shift": shifted}))
    eq = eq_ops_frame(records)
    assert set(eq.operator) == {"ideal", "scale-shift"}
    palette = plots.Palette([r.method for r in records])
    fig = plots.eq_per_operator(eq, palette, "mnist-res")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["ideal", "scale-shift"]
    ideal, shift = (ax.get_lines()[_lines(ax).index("sesn_vector")].get_ydata()
                    for ax in fig.axes[:2])
    assert shift[0] == pytest.approx(0.01) and ideal[0] != pytest.approx(0.01)
    assert plots.eq_per_operator(eq[eq.operator == "ideal"], palette, "x") is None


def test_several_comparisons_get_an_average_rank_summary_and_cd_diagram(tmp_path):
    """Four comparisons (epochs 1-4) of three methods: the summary table of leaderboard.md and
    of the page, and the critical-difference figure beside it."""
    accs = {"sesn": [0.95, 0.94, 0.96, 0.93], "cnn": [0.90, 0.91, 0.89, 0.94],
            "dss": [0.85, 0.93, 0.88, 0.90]}
    folder = tmp_path / "multi"
    for method, per_epochs in accs.items():
        for epochs, acc in enumerate(per_epochs, 1):
            RunStore(folder).write(RunRecord.for_spec(
                RunSpec(method, seed=0, experiment="multi", epochs=epochs), status="ok",
                test_acc=acc, params=1))
    out = tmp_path / "report"
    written = build_report([folder], out)
    md = (out / "leaderboard.md").read_text()
    assert "## Average ranks over the comparisons" in md
    # per comparison (1 the most accurate): sesn 1 1 1 2, cnn 2 3 2 1, dss 3 2 3 3
    table = md[md.index("| method   | average rank"):].split("\n\n")[0]
    assert "| sesn     | 1.25" in table and "| cnn      | 2.00" in table
    assert "| dss      | 2.75" in table
    cd = 2.343 * math.sqrt(3 * 4 / (6 * 4))
    assert f"critical difference (α = 0.05): {cd:.2f}" in md
    page = (out / "index.html").read_text()
    assert 'id="average-ranks"' in page and 'id="average_ranks"' in page
    assert page.index('id="average_ranks"') < page.index('<h2 id="mnist-res')
    assert out / "figures" / "average_ranks.png" in written
    assert plots.cd_diagram(pd.DataFrame({"method": [], "average_rank": []}), 1.0, 3,
                            plots.Palette(), "x") is None


def test_cd_cliques_join_what_the_critical_difference_does_not_separate():
    from scaleqbench.bench.report.plots.ranks import cliques

    assert cliques([1.0, 1.5, 2.0, 4.0], cd=1.1) == [(0, 2)]
    assert cliques([1.0, 2.0, 3.0, 4.0], cd=1.5) == [(0, 1), (1, 2), (2, 3)]
    assert cliques([1.0, 3.0, 5.0], cd=1.0) == []  # every pair separated
    assert cliques([1.0, 1.1, 1.2], cd=5.0) == [(0, 2)]
