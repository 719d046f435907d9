"""The leaderboard's intervals, ties and ranks: every metric shows its 95 % interval (Student t
over seeds; with one seed a bootstrap over the test images the record holds), the rows no
test tells from the best in bold, a rank range, an average-rank summary over several
comparisons, and the per-image outcomes that one-seed intervals are computed from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sp

from scaleqbench.bench.errors import CorruptRecordError
from scaleqbench.bench.store.per_image import pack_bits, unpack_bits
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.spec import RunSpec

from leaderboard_support import cell, run_cli, t_bounds, table, TINY


# ---- intervals, ties and ranks ---------------------------------------------------------------

#: per method and seed: (test acc, scale consistency, eq err, logit inv err); fourier's accuracy
#: differs from cnn's by +1.0, -0.5, +0.3 points (no paired test separates that), its other
#: metrics by far more than their seed noise
SWEEP = {
    "cnn": [(0.900, 0.50, 0.50, 0.20), (0.910, 0.52, 0.60, 0.21), (0.920, 0.54, 0.70, 0.23)],
    "fourier": [(0.910, 0.90, 1e-13, 0.010), (0.905, 0.91, 2e-13, 0.011),
                (0.923, 0.93, 1.5e-13, 0.012)],
}


def test_three_seeds_show_intervals_tied_ranks_and_the_note(tmp_path, monkeypatch, cache_dir,
                                                            capsys):
    """``bench run --methods cnn,fourier --seeds 0-2``: every metric with its Student t
    interval, the accuracies tied (rank 1–2, both bold), the rest told apart."""
    import scaleqbench.bench.launch.job as job

    def fake_run_one(spec, out_dir, progress=False, context=None):
        acc, cons, eq, logit = SWEEP[spec.method][spec.seed]
        rec = RunRecord.for_spec(spec, status="ok", test_acc=acc, scale_consistency=cons,
                                 eq_err=eq, logit_inv_err=logit, params=1000, **(context or {}))
        RunStore(out_dir).write(rec)
        return rec

    monkeypatch.setattr(job, "run_one", fake_run_one)
    out_dir = tmp_path / "exp"
    assert run_cli("run", "--methods", "cnn,fourier", "--seeds", "0-2", "--out", out_dir,
                   *TINY) == 0
    out = capsys.readouterr().out
    rows = {r["method"]: r for r in table(out)}
    columns = ["test acc (%)", "scale consist. (%)", "equiv. err", "logit inv. err"]
    for method, per_seed in SWEEP.items():
        for k, column in enumerate(columns):
            values = [v[k] for v in per_seed]
            scale, top = (100.0, 1.0) if k < 2 else (1.0, math.inf)
            mean, lo, hi = cell(rows[method][column])
            want_lo, want_hi = t_bounds(values, scale, top)
            assert mean == pytest.approx(scale * np.mean(values), rel=5e-3)
            assert (lo, hi) == pytest.approx((want_lo, want_hi), rel=0.05, abs=1e-15)
        assert rows[method]["runs"] == "3 runs, 0 failed"
        assert rows[method]["rank"] == "1–2"
    # a paired t-test over the three seeds: accuracy p > 0.05, the others p < 0.05
    acc_p = sp.ttest_rel([v[0] for v in SWEEP["cnn"]], [v[0] for v in SWEEP["fourier"]]).pvalue
    assert acc_p > 0.05
    bold = {(m, c) for m, r in rows.items() for c in columns if r[c].startswith("**")}
    assert bold == {("cnn", "test acc (%)"), *(("fourier", c) for c in columns)}
    assert "95 % confidence interval" in out and "paired t-test over seeds" in out
    assert "Rank (test accuracy)" in out
    csv = pd.read_csv(out_dir / "leaderboard.csv")
    for col in ("test_acc_lo", "test_acc_hi", "test_acc_std", "scale_consistency_lo",
                "eq_err_hi", "logit_inv_err_std", "n_seeds", "rank_lo", "rank_hi"):
        assert col in csv and csv[col].notna().all(), col
    assert set(csv.n_seeds) == {3} and set(csv.test_acc_ci) == {"t"}


def _bits_record(folder: Path, method: str, right: list[bool], consistent: list[bool],
                 seed: int = 0) -> RunRecord:
    rec = RunRecord.for_spec(
        RunSpec(method, seed=seed, experiment=folder.name), status="ok", params=10,
        test_acc=float(np.mean(right)), scale_consistency=float(np.mean(consistent)),
        eq_err=0.1, logit_inv_err=0.2,
        per_image={"test_correct": pack_bits(right), "consistent": pack_bits(consistent)})
    RunStore(folder).write(rec)
    return rec


def test_one_seed_is_judged_over_its_test_images(tmp_path, capsys):
    """One seed: a bootstrap interval over the test images and McNemar's exact test, from the
    per-image outcomes the records hold; the equivariance errors have no interval."""
    n = 400
    rng = np.random.default_rng(5)
    a = rng.random(n) < 0.9
    b = a.copy()
    b[np.flatnonzero(a)[:30]] = False  # 30 images only `a` gets right, 2 only `b`
    b[np.flatnonzero(~a)[:2]] = True
    c = a.copy()
    c[np.flatnonzero(a)[:3]] = False  # 3 against 2: no test tells c from a
    c[np.flatnonzero(~a)[:2]] = True
    for method, right in (("cnn", a), ("sesn", b), ("dss", c)):
        _bits_record(tmp_path, method, list(right), list(rng.random(n) < 0.6))
    assert run_cli("leaderboard", tmp_path) == 0
    out = capsys.readouterr().out
    rows = {r["method"]: r for r in table(out)}
    mean, lo, hi = cell(rows["cnn"]["test acc (%)"])
    p = a.mean()
    half = 100 * 1.96 * math.sqrt(p * (1 - p) / n)  # the normal approximation
    assert lo < mean < hi and (hi - lo) / 2 == pytest.approx(half, rel=0.2)
    assert cell(rows["cnn"]["equiv. err"])[1:] == (None, None)
    assert sp.binomtest(2, 32, 0.5).pvalue < 0.05 and sp.binomtest(2, 5, 0.5).pvalue > 0.05
    assert rows["cnn"]["rank"] == "1–2" and rows["dss"]["rank"] == "1–2"
    assert rows["sesn"]["rank"] == "3"
    assert rows["dss"]["test acc (%)"].startswith("**")
    assert not rows["sesn"]["test acc (%)"].startswith("**")
    assert "bootstrap over that run's test images" in out and "no seed-to-seed" in out
    assert "McNemar's exact test over test images" in out


def test_an_average_rank_summary_over_several_comparisons(tmp_path, capsys):
    """Three comparisons (epochs 1, 2, 3) of three methods: the average ranks, Friedman's
    statistic and the Nemenyi critical difference of Demšar (2006)."""
    accs = {1: {"cnn": 0.90, "sesn": 0.92, "dss": 0.80},
            2: {"cnn": 0.91, "sesn": 0.93, "dss": 0.95},
            3: {"cnn": 0.80, "sesn": 0.94, "dss": 0.85}}
    for epochs, per_method in accs.items():
        for method, acc in per_method.items():
            RunStore(tmp_path).write(RunRecord.for_spec(
                RunSpec(method, seed=0, experiment=tmp_path.name, epochs=epochs),
                status="ok", test_acc=acc, params=1))
    assert run_cli("leaderboard", tmp_path) == 0
    out = capsys.readouterr().out
    # per comparison 1 is the most accurate: sesn 1, 2, 1; cnn 2, 3, 3; dss 3, 1, 2
    ranks = {"sesn": (1 + 2 + 1) / 3, "cnn": (2 + 3 + 3) / 3, "dss": (3 + 1 + 2) / 3}
    chi2 = 12 * 3 / (3 * 4) * (sum(r * r for r in ranks.values()) - 3 * 16 / 4)
    cd = 2.343 * math.sqrt(3 * 4 / (6 * 3))
    assert "Average rank of test accuracy over 3 comparisons" in out
    assert f"Friedman χ²_F = {chi2:.2f} (2 df)" in out
    assert f"critical difference (α = 0.05): {cd:.2f}" in out
    summary = out[out.index("Average rank"):]
    rows = {r["method"]: r for r in table(summary)}
    assert {m: float(r["average rank"]) for m, r in rows.items()} == \
        pytest.approx(ranks, abs=0.005)
    assert rows["sesn"]["within CD of the best"] == "yes"


@given(st.lists(st.booleans(), max_size=70))
def test_per_image_bits_round_trip(bits):
    packed = pack_bits(bits)
    assert unpack_bits(packed) == bits
    assert packed.startswith(f"{len(bits)}:") and len(packed) <= 12 + 4 * (len(bits) + 7) // 6


def test_a_record_with_malformed_per_image_outcomes_is_named(tmp_path):
    rec = _bits_record(tmp_path, "cnn", [True, False, True], [True, True, False])
    text = rec.path.read_text()
    assert RunRecord.from_json(text, rec.path).per_image == rec.per_image
    for bad, why in (({"test_correct": "3:oA=="}, None),  # well formed: read
                     ({"test_correct": "3:/w=="}, "bits set after the last image"),
                     ({"test_correct": "9:oA=="}, "hold no 9 bits"),
                     ({"test_correct": "3:!!"}, "not base64"),
                     ({"guess": "3:oA=="}, "unknown key"),
                     ({"test_correct": "3:oA==", "consistent": "2:wA=="}, None),  # a subset
                     ({"test_correct": "2:wA==", "consistent": "3:oA=="},
                      "3 consistency outcomes for 2 test images"),
                     ({"test_correct": "3:oA==", "test_correct_recal": "2:wA=="},
                      "test_correct image counts differ")):
        data = json.loads(text)
        data["per_image"] = bad
        if why is None:
            assert RunRecord.from_json(json.dumps(data), rec.path).per_image == bad
            continue
        with pytest.raises(CorruptRecordError, match=f"per_image.*{why}"):
            RunRecord.from_json(json.dumps(data), rec.path)


def test_evaluate_records_each_test_images_outcome():
    """The per-image outcomes are the predictions behind test_acc and scale_consistency."""
    from test_evaluate import CPU, FACTORS, LARGE_PX, N, ReadsTheGrey, canvas_dataset

    from scaleqbench.bench.run.evaluate import evaluate

    ds = canvas_dataset()
    out = evaluate(ReadsTheGrey(large_only=True), ds, CPU, batch_size=32)
    right = unpack_bits(out["per_image"]["test_correct"])
    assert right == [round(N * f) >= LARGE_PX for f in FACTORS] * 10  # the test split's order
    assert np.mean(right) == pytest.approx(out["test_acc"])
    assert unpack_bits(out["per_image"]["consistent"]) == [False] * len(right)
    out = evaluate(ReadsTheGrey(), ds, CPU, batch_size=32)
    assert all(unpack_bits(out["per_image"]["consistent"])) and out["scale_consistency"] == 1.0
