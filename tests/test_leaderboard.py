"""The leaderboard key, its intervals and ties, and the integrity of what the leaderboard,
report, status and run read.

One row per protocol and method: runs that differ in epochs or source never
share a mean. Every metric shows its 95 % interval (Student t over seeds; with one
seed a bootstrap over the test images the record holds), the rows no test tells
from the best in bold, and a rank range. A run is identified by its protocol,
method and seed, not by the folder it is stored in, so a copied folder neither
recomputes nor counts twice. A damaged record is named by every reader and never
silently dropped.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sp

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.errors import CorruptRecordError
from scaleqbench.bench.report.leaderboard import records_frame, summarize
from scaleqbench.bench.store.per_image import pack_bits, unpack_bits
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.spec import RunSpec

TINY = ["--limit-train", "120", "--limit-eval", "60", "--epochs", "1", "--quiet", "--no-report"]
REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "mnist-res-quick"
SCHEMA0 = Path(__file__).resolve().parent / "fixtures" / "schema0" / "mnist-res-quick"


def run_cli(*argv: str) -> int:
    return cli.main([str(a) for a in argv])


def table(text: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in ``text``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[start:end]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in rows[2:]]


def cell(text: str) -> tuple[float, float | None, float | None]:
    """``"**92.20 [91.05, 93.35]**"`` -> (92.2, 91.05, 93.35); ``"92.20 [—]"`` -> (92.2, None,
    None)."""
    m = re.fullmatch(r"(?:\*\*)?(\S+) \[(.*)\](?:\*\*)?", text)
    assert m, text
    if m.group(2) == "—":
        return float(m.group(1)), None, None
    lo, hi = (float(v) for v in m.group(2).split(","))
    return float(m.group(1)), lo, hi


def t_bounds(values: list[float], scale: float = 100.0, top: float = 1.0) -> tuple[float, float]:
    """The 95 % Student t interval of the mean, by scipy, clipped to the range [0, top]."""
    lo, hi = sp.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sp.sem(values))
    return scale * max(lo, 0.0), scale * min(hi, top)


def made(folder: Path, seed: int, acc: float, **spec_fields) -> RunRecord:
    rec = RunRecord.for_spec(RunSpec("cnn", seed=seed, experiment=folder.name, **spec_fields),
                             status="ok", test_acc=acc, eq_err=0.1, params=1000)
    RunStore(folder).write(rec)
    return rec


def test_runs_of_different_epochs_or_sources_never_share_a_row(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    accs = {("a", 0): 0.61, ("a", 1): 0.63, ("b", 0): 0.81, ("b", 1): 0.86, ("b", 2): 0.8}
    for (name, seed), acc in accs.items():
        made(tmp_path / name, seed, acc, epochs=1 if name == "a" else 2)
    assert run_cli("leaderboard", a, b) == 0
    rows = table(capsys.readouterr().out)
    assert len(rows) == 2 and "source" not in rows[0]  # only the key fields that differ show
    by_epochs = {r["epochs"]: r for r in rows}
    for epochs, name in (("1", "a"), ("2", "b")):
        mine = [acc for (n, _), acc in accs.items() if n == name]
        lo, hi = t_bounds(mine)
        assert by_epochs[epochs]["test acc (%)"].strip("*") == \
            f"{100 * statistics.mean(mine):.2f} [{lo:.2f}, {hi:.2f}]"
        assert by_epochs[epochs]["runs"] == f"{len(mine)} runs, 0 failed"
    made(tmp_path / "c", 0, 0.9, epochs=1, source="torchvision")
    assert run_cli("leaderboard", a, b, tmp_path / "c") == 0
    rows = table(capsys.readouterr().out)
    assert len(rows) == 3
    assert sorted((r["source"], r["epochs"]) for r in rows) == [
        ("embedded", "1"), ("embedded", "2"), ("torchvision", "1")]


def test_seeds_of_one_protocol_share_a_row_and_options_do_not(tmp_path):
    recs = [made(tmp_path, s, 0.5) for s in (0, 1, 2)]
    recs.append(made(tmp_path, 0, 0.7, method_kwargs=(("width", 2),)))
    recs.append(made(tmp_path, 0, 0.7, limit_train=100))
    board = summarize(records_frame(recs))
    assert sorted(board.runs) == [1, 1, 3]
    assert sorted(board.method) == ["cnn", "cnn", "cnn[width=2]"]
    assert sorted(board.limit_train, key=str) == [100, None, None]


def test_schema0_records_are_read(capsys):
    assert run_cli("leaderboard", SCHEMA0) == 0
    rows = table(capsys.readouterr().out)
    assert len(rows) == 6 and {r["runs"] for r in rows} == {"1 run, 0 failed"}


def test_the_committed_reference_records_are_read(capsys):
    """One row per committed record (one seed each), none failed, none left out. Records
    written before per-image outcomes have no one-seed interval and no rank: said, not a
    crash; only the best of each column is bold (no test can tie another with it)."""
    assert run_cli("leaderboard", REFERENCE, "--strict") == 0
    out = capsys.readouterr().out
    rows = table(out)
    assert len(rows) == len(list((REFERENCE / "runs").glob("*.json"))) >= 6
    assert {r["runs"] for r in rows} == {"1 run, 0 failed"}
    if all("[—]" in r["test acc (%)"] for r in rows):
        assert {r["rank"] for r in rows} == {"—"}
        assert sum(r["test acc (%)"].startswith("**") for r in rows) == 1
        assert "no comparison could be tested here" in out


@pytest.fixture()
def trained(monkeypatch):
    """``bench run`` with a stand-in for training: each call records a finished run."""
    import scaleqbench.bench.launch.job as job

    calls: list[RunSpec] = []

    def fake_run_one(spec, out_dir, progress=False, context=None):
        calls.append(spec)
        rec = RunRecord.for_spec(spec, status="ok", test_acc=0.5 + 0.1 * spec.seed,
                                 eq_err=0.2, params=1000, **(context or {}))
        RunStore(out_dir).write(rec)
        return rec

    monkeypatch.setattr(job, "run_one", fake_run_one)
    return calls


@pytest.fixture()
def exp(tmp_path, trained, cache_dir) -> Path:
    out = tmp_path / "exp"
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", out, *TINY) == 0
    assert len(trained) == 2
    trained.clear()
    return out


def test_a_copied_experiment_is_resumed_and_counted_once(exp, tmp_path, trained, capsys):
    copy = tmp_path / "exp2"
    shutil.copytree(exp, copy)
    capsys.readouterr()
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", copy, *TINY) == 0
    assert trained == [] and "2 already done" in capsys.readouterr().out
    assert run_cli("leaderboard", exp, copy) == 0
    out, err = capsys.readouterr()
    (row,) = table(out)
    lo, hi = t_bounds([0.5, 0.6])
    assert row["runs"] == "2 runs, 0 failed"
    assert row["test acc (%)"].strip("*") == f"55.00 [{lo:.2f}, {hi:.2f}]"
    assert f"2 run(s) of {copy} are also in {exp}" in err
    assert run_cli("leaderboard", exp, exp) == 0
    out, err = capsys.readouterr()
    assert table(out)[0]["runs"] == "2 runs, 0 failed" and "given twice" in err


def _truncate(exp: Path, seed: int) -> Path:
    (path,) = [r.path for r in RunStore(exp).scan()[0] if r.seed == seed]
    path.write_bytes(path.read_bytes()[:200])
    return path


def test_a_damaged_record_is_named_by_leaderboard_and_report(exp, capsys):
    path = _truncate(exp, seed=1)
    capsys.readouterr()
    assert run_cli("leaderboard", exp) == 0
    out, err = capsys.readouterr()
    assert table(out)[0]["runs"] == "1 run, 0 failed"
    assert err.count("\n") == 1 and err.startswith("bench: warning: ")
    assert f"{path} is not a readable run record" in err and "left out" in err
    assert run_cli("leaderboard", exp, "--strict") == 2
    out, err = capsys.readouterr()
    assert str(path) in err and "--strict" in err.splitlines()[-1] and out == ""
    assert run_cli("report", exp, "--out", exp / "r") == 0
    assert str(path) in capsys.readouterr().err
    assert str(path) in (exp / "r" / "index.html").read_text()  # the page says so too
    assert run_cli("report", exp, "--out", exp / "r2", "--strict") == 2
    assert not (exp / "r2").exists()


def test_status_and_run_name_a_damaged_record_and_run_moves_it_aside(exp, trained, capsys,
                                                                     caplog):
    path = _truncate(exp, seed=1)
    damaged = path.read_bytes()
    capsys.readouterr()
    assert run_cli("status", exp) == 0
    out = capsys.readouterr().out
    assert re.search(r"\| cnn +\| +1 \| corrupt record", out) and str(path) in out
    assert "1 done, 1 corrupt record" in out
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", exp, *TINY) == 0
    assert [s.seed for s in trained] == [1]  # recomputed, and only it
    assert "1 already done" in capsys.readouterr().out
    assert f"{path} is not a readable run record" in caplog.text
    assert "will be recomputed" in caplog.text
    (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
    assert aside.read_bytes() == damaged  # moved, never deleted
    records, problems = RunStore(exp).scan()
    assert problems == [] and sorted(r.seed for r in records) == [0, 1]
    assert RunStore(exp).path(trained[0].run_id) == path


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
                     ({"test_correct": "3:oA==", "consistent": "2:wA=="}, "image counts differ")):
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
