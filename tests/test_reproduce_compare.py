"""``bench reproduce``'s comparison math: the delta in published standard deviations, error
per column, failed and missing runs counted, the rule that embedded (scaled-down) numbers
are never set beside published ones, and the equivariance column of the Fourier paper.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from scaleqbench.bench.published import reference
from scaleqbench.bench.published.reference import load_published
from scaleqbench.bench.published.table_files import load_table
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.published.reproduce import comparison, metric_value, plan
from scaleqbench.bench.published.render import render_table

from reproduce_support import _published, _record


def test_comparison_delta_in_published_std_units():
    t = load_table("fourier-mnist")
    runs = [p for p in plan(t, "torchvision") if p.spec.method == "cnn"
            and p.column.key == "full"]
    accs = {0: 0.93, 1: 0.95, 2: 0.97}
    records = [_record(p.spec, accs[p.spec.seed]) for p in runs]
    frame = comparison(runs, records, _published(0.90, 0.02))
    row = frame[frame.metric == "test_acc"].iloc[0]
    assert row["mean"] == pytest.approx(0.95) and row["std"] == pytest.approx(0.02)
    assert row.comparable and row.published == pytest.approx(0.90)
    assert row.delta == pytest.approx(0.05) and row.delta_sd == pytest.approx(2.5)
    sc = frame[frame.metric == "scale_consistency"].iloc[0]
    assert sc["mean"] == pytest.approx(0.85) and math.isnan(sc.published)  # none published
    text = render_table(t, frame, "torchvision")
    line = next(ln for ln in text.splitlines() if ln.startswith("| cnn"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert "95.00 ± 2.00" in cells and "90.00 ± 2.00" in cells
    assert "+5.00" in cells and "+2.5" in cells  # Δ in pp, Δ in published stds
    assert "Table 9, page 7" in text
    # no std published: Δ, but no Δ in std units
    frame = comparison(runs, records, _published(0.90, math.nan))
    row = frame[frame.metric == "test_acc"].iloc[0]
    assert row.delta == pytest.approx(0.05) and math.isnan(row.delta_sd)
    header = next(ln for ln in render_table(t, frame, "torchvision").splitlines()
                  if ln.startswith("| method"))
    assert "Δ acc (pp)" in header and "published std" not in header


def test_sesn_table_compares_error_per_column():
    """The SESN table prints test error for two datasets: each column finds the published
    error of its own dataset (not the other column's, not another dataset's accuracy), and
    Δ = ours − published error is positive when ours errs more."""
    t = load_table("sesn-mnist-scale")
    runs = [p for p in plan(t, "torchvision") if p.spec.method == "sesn"]
    accs = {"mnist-scale": [0.980, 0.982, 0.984, 0.978, 0.980, 0.982],  # error 1.90 ± 0.21 %
            "mnist-scale+": [0.985, 0.986, 0.987, 0.985, 0.986, 0.987]}  # error 1.40 ± 0.09 %
    records = [_record(p.spec, accs[p.spec.dataset][p.spec.seed]) for p in runs]
    published = pd.concat([
        _published(0.0170, 0.0010, "mnist-scale", "sesn", "test_err"),
        _published(0.0150, 0.0005, "mnist-scale+", "sesn", "test_err"),
        _published(0.99, 0.01, "mnist-scale", "sesn", "test_acc"),  # a metric no column prints
        _published(0.0100, 0.0010, "mnist-res", "sesn", "test_err")])  # another protocol
    frame = comparison(runs, records, published).set_index("column")
    assert set(frame.metric) == {"test_err"}
    plain, plus = frame.loc["28"], frame.loc["28+"]
    assert plain.comparable and plus.comparable
    assert plain["mean"] == pytest.approx(0.019) and plain.published == pytest.approx(0.017)
    assert plain.delta == pytest.approx(0.002) and plain.delta_sd == pytest.approx(2.0)
    assert plus["mean"] == pytest.approx(0.014) and plus.published == pytest.approx(0.015)
    assert plus.delta == pytest.approx(-0.001) and plus.delta_sd == pytest.approx(-2.0)
    text = render_table(t, frame.reset_index(), "torchvision")
    lines = [ln for ln in text.splitlines() if ln.startswith("| sesn ")]
    assert len(lines) == 2  # one row per column
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    assert {"1.90 ± 0.21", "1.70 ± 0.10", "+0.20", "+2.0"} <= set(cells[0])
    assert {"1.40 ± 0.09", "1.50 ± 0.05", "-0.10", "-2.0"} <= set(cells[1])
    assert "error (%), published" in text and "Δ error / published std" in text


def test_published_sesn_values_name_their_checked_source():
    """Any value the SESN table would show is the SESN paper's, with the table, page and the
    readable source it was checked against (none is listed until one could be checked)."""
    t = load_table("sesn-mnist-scale")
    pub = load_published()
    rows = pub[pub.dataset.isin([c.dataset for c in t.columns]) & pub.method.isin(t.methods)]
    for row in rows.itertuples(index=False):
        assert "Scale-Equivariant Steerable Networks" in row.source, row
        assert row.table.startswith("Table 2") and row.metric == "test_err", row
        assert row.verified_from.strip() and row.page.strip(), row
        assert 0 < row.value < 1 and (math.isnan(row.std) or 0 < row.std < row.value), row


def test_failed_and_missing_runs_are_counted_not_averaged():
    t = load_table("fourier-mnist")
    runs = [p for p in plan(t, "torchvision") if p.spec.method == "cnn"
            and p.column.key == "full"]
    records = [_record(runs[0].spec, 0.9), _record(runs[1].spec, None, status="failed")]
    row = comparison(runs, records, _published(0.90, 0.02)).iloc[0]
    assert row.n == 1 and row.failed == 1 and row.planned == 3
    assert row["mean"] == pytest.approx(0.9) and math.isnan(row["std"])


def test_embedded_numbers_are_never_compared(monkeypatch):
    t = load_table("fourier-mnist")
    runs = [p for p in plan(t, "embedded") if p.spec.method == "cnn"]
    records = [_record(p.spec, 0.9) for p in runs]
    frame = comparison(runs, records, _published(0.90, 0.02))
    assert frame.embedded.all() and not frame.comparable.any()
    assert frame.published.isna().all() and frame.delta.isna().all()
    text = render_table(t, frame, "embedded")
    header = next(ln for ln in text.splitlines() if ln.startswith("| method"))
    assert "embedded, scaled down" in header
    assert "published" not in header and "Δ" not in header
    assert "Embedded, scaled down" in text and "--source torchvision" in text
    # even were the protocol rule to say yes, an embedded run stays uncompared
    monkeypatch.setattr("scaleqbench.bench.published.reproduce.compares_to_published", lambda *a: True)
    assert comparison(runs, records, _published(0.90, 0.02)).published.isna().all()


def test_metric_values_follow_the_leaderboard():
    spec = plan(load_table("fourier-mnist"), "embedded")[0].spec
    rec = _record(spec, 0.8)
    assert metric_value(rec, "test_err") == pytest.approx(0.2)
    rec.set(test_acc_recal=0.9, scale_consistency_recal=0.75)  # recalibrated BN statistics
    assert metric_value(rec, "test_acc") == pytest.approx(0.9)
    assert metric_value(rec, "scale_consistency") == pytest.approx(0.75)
    rec.set(eq_err=math.nan)
    assert metric_value(rec, "eq_err") is None


def test_published_protocol_is_the_full_one():
    p = reference.published_protocol("mnist-res", "cnn")
    assert (p.source, p.preset, p.input, p.epochs, p.limit_train) == (
        "torchvision", "paper", "pad", None, None)
    assert reference.published_protocol("mnist-res", "fourier").input == "native"
    assert reference.published_protocol("mnist-res", "cnn", 5000).limit_train == 5000


# --- the Fourier paper's own equivariance measure and splits -------------------------------
def _ry_record(spec, per_layer: dict[str, float], acc: float = 0.9) -> RunRecord:
    """A finished run whose rahman-yeh errors are ``per_layer[layer]`` at each of the authors'
    sizes of its protocol."""
    sizes = range(8, 28) if spec.dataset.startswith("mnist") else range(49, 97, 8)
    rec = _record(spec, acc)
    rec.set(equivariance_error_ops={"rahman-yeh": {
        layer: {str(s): v for s in sizes} for layer, v in per_layer.items()}})
    return rec


def test_the_authors_equivariance_number_is_read_from_the_runs_rahman_yeh_errors():
    """Their normalisation: the first map (MNIST) or the last (STL-10), summed over their 20
    / 6 sizes and divided by 21 / 7; nothing where the sizes are not theirs."""
    mnist = plan(load_table("fourier-mnist"), "torchvision")[0].spec
    rec = _ry_record(mnist, {"block1": 0.21, "block2": 5.0})
    assert metric_value(rec, "eq_err_rahman_yeh") == pytest.approx(20 * 0.21 / 21)
    stl = plan(load_table("fourier-stl10"), "torchvision")[0].spec
    rec = _ry_record(stl, {"block1": 5.0, "block3": 0.7})
    assert metric_value(rec, "eq_err_rahman_yeh") == pytest.approx(6 * 0.7 / 7)
    rec.set(equivariance_error_ops={"rahman-yeh": {"block3": {"49": 0.7}}})  # not their sizes
    assert metric_value(rec, "eq_err_rahman_yeh") is None
    assert metric_value(_record(mnist, 0.9), "eq_err_rahman_yeh") is None  # not measured


def test_the_equivariance_column_has_a_delta_only_where_measured_as_published():
    """Stand-in published values for fourier and cnn: the authors published the code that
    measured their own model only, so fourier gets a Δ and cnn its published value marked
    "protocol partly unknown", without Δ; the notes say what was measured and why."""
    t = load_table("fourier-mnist")
    runs = [p for p in plan(t, "torchvision") if p.spec.method in ("fourier", "cnn")
            and p.column.key == "full"]
    records = [_ry_record(p.spec, {"block1": 0.0 if p.spec.method == "fourier" else 0.42})
               for p in runs]
    published = pd.concat([
        _published(0.01, math.nan, method="fourier", metric="eq_err_rahman_yeh"),
        _published(0.30, math.nan, method="cnn", metric="eq_err_rahman_yeh"),
        _published(0.95, math.nan, method="cnn", metric="test_acc")])
    frame = comparison(runs, records, published)
    eq = frame[frame.metric == "eq_err_rahman_yeh"].set_index("method")
    assert eq.loc["fourier", "delta"] == pytest.approx(-0.01) and eq.loc["fourier", "note"] == ""
    assert eq.loc["cnn", "published"] == pytest.approx(0.30) and math.isnan(eq.loc["cnn", "delta"])
    assert eq.loc["cnn", "note"] == "protocol partly unknown"
    assert eq.loc["cnn", "mean"] == pytest.approx(20 * 0.42 / 21)
    acc = frame[frame.metric == "test_acc"].set_index("method")
    assert acc.loc["cnn", "delta"] == pytest.approx(-0.05)  # accuracy: measured as published
    text = render_table(t, frame, "torchvision")
    cells = {ln.split("|")[1].strip(): [c.strip() for c in ln.strip("|").split("|")]
             for ln in text.splitlines() if ln.startswith(("| cnn", "| fourier"))}
    assert "3.00e-01 (protocol partly unknown)" in cells["cnn"]
    assert "1.00e-02" in cells["fourier"] and "-1.00e-02" in cells["fourier"]
    assert "the same layer position for all" in text and "divided by 21" in text
    assert "first block's map" in text and "how they measured the other methods' values" in text
    assert "measured fourier only" in text
