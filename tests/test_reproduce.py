"""``bench reproduce``: the table files, the table -> run-spec mapping, the comparison math, the
rule that embedded (scaled-down) numbers are never set beside published ones, and a tiny
end-to-end run on the embedded source."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.errors import DataSourceError, UnknownNameError
from scaleqbench.bench.published import reference
from scaleqbench.bench.published.reference import compares_to_published, load_published
from scaleqbench.bench.published.table_files import (
    METRICS,
    list_tables,
    load_table,
    parse_table,
)
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.published.reproduce import comparison, metric_value, plan
from scaleqbench.bench.published.render import render_table
from scaleqbench.datasets import DATASETS

TABLES = ("fourier-mnist", "fourier-stl10", "sesn-mnist-scale")


def test_the_three_tables_ship_and_parse():
    assert set(TABLES) <= set(list_tables())
    for name in TABLES:
        t = load_table(name)
        assert t.name == name and t.paper and t.seeds and t.columns
        assert all(m in methods.list_methods() for m in t.methods), name
        for c in t.columns:
            assert c.dataset in DATASETS and set(c.metrics) <= set(METRICS)
        if t.embedded is not None:  # a column's share of the 3,000 embedded training images
            assert all(2 <= n < 3000 for n in t.embedded.train_images.values())
    mnist = load_table("fourier-mnist")
    assert [c.train_images for c in mnist.columns] == [None, 5000]
    assert mnist.embedded.train_images == {"5k": 1500}  # 5,000 of 10,000 -> 1,500 of 3,000
    assert load_table("fourier-stl10").embedded is None  # STL-10 is not embedded
    sesn = load_table("sesn-mnist-scale")
    assert sesn.seeds == (0, 1, 2, 3, 4, 5)  # 6 realizations
    assert [c.dataset for c in sesn.columns] == ["mnist-scale", "mnist-scale+"]


def test_every_published_value_names_paper_table_and_page():
    pub = load_published()
    assert len(pub) >= 40
    for col in ("source", "table", "page", "verified_from"):
        assert pub[col].astype(str).str.strip().ne("").all(), col
    assert set(pub.metric) <= set(METRICS)
    assert set(pub.method) <= set(methods.list_methods())
    assert set(pub.dataset) <= set(DATASETS)
    # one home for each number: no (dataset, method, metric, train size) twice
    key = pub[["dataset", "method", "metric"]].assign(n=pub.train_images.astype(str))
    assert not key.duplicated().any()
    five_k = pub[pub.train_images.notna()]
    assert set(five_k.train_images) == {5000} and set(five_k.metric) == {"test_acc"}
    # a published value a table names is one the table's columns print
    for name in TABLES:
        t = load_table(name)
        for c in t.columns:
            rows = pub[(pub.dataset == c.dataset) & pub.method.isin(t.methods)]
            assert set(rows.metric) <= set(METRICS)


@pytest.mark.parametrize("broken, message", [
    ({"name": "x"}, "missing 'title'"),
    ({"columns": [{"key": "a", "label": "A", "dataset": "mnist-res", "metrics": ["acc"]}]},
     "metrics must be some of"),
    ({"seeds": []}, "non-empty list"),
    ({"columns": [{"key": "a", "label": "A", "dataset": "mnist-res", "metrics": ["test_acc"],
                   "method_options": {"cnn": 3}}]}, "method_options must map"),
    ({"embedded": {"preset": "quick", "seeds": [0], "note": "n", "train_images": {"zz": 5}}},
     "train_images must map column keys"),
    ({"embedded": {"preset": "quick", "seeds": [0], "note": "n", "epochs": 0}},
     "epochs must be >= 1"),
])
def test_a_malformed_table_names_its_field(broken, message):
    good = {"name": "x", "title": "t", "paper": "p", "methods": ["cnn"], "preset": "paper",
            "input": "published", "seeds": [0], "seeds_note": "n",
            "columns": [{"key": "a", "label": "A", "dataset": "mnist-res",
                         "metrics": ["test_acc"]}]}
    bad = {**good, **broken}
    if broken == {"name": "x"}:
        del bad["title"]
    with pytest.raises(ValueError, match=message):
        parse_table(bad, "tables/x.toml")


def test_unknown_table_suggests_a_name():
    with pytest.raises(UnknownNameError, match="did you mean 'fourier-mnist'"):
        load_table("fourier-mnst")


def test_table_to_run_specs_embedded_and_full():
    t = load_table("fourier-mnist")
    emb = plan(t, "embedded")
    assert len(emb) == len(t.methods) * 2 * 1  # two columns, one embedded seed
    assert {p.spec.preset for p in emb} == {"quick"} and {p.spec.seed for p in emb} == {0}
    assert {(p.spec.epochs, p.spec.limit_eval) for p in emb} == {(2, 500)}  # fewer, smaller
    assert {p.spec.limit_train for p in emb if p.column.key == "5k"} == {1500}
    assert {p.spec.limit_train for p in emb if p.column.key == "full"} == {None}
    policy = {p.spec.method: p.spec.input for p in emb}
    assert policy["fourier"] == "native" and policy["cnn"] == "pad"  # published handling
    full = plan(t, "torchvision", data_root="/data")
    assert len(full) == len(t.methods) * 2 * 3
    assert {p.spec.preset for p in full} == {"paper"} and {p.spec.seed for p in full} == {0, 1, 2}
    assert {(p.spec.epochs, p.spec.limit_eval) for p in full} == {(None, None)}  # the recipe's
    assert {p.spec.limit_train for p in full if p.column.key == "5k"} == {5000}
    # the full runs are the published protocol; the embedded ones and any override are not
    assert all(compares_to_published(p.spec.protocol, p.spec.method, p.column.train_images)
               for p in full)
    assert not any(compares_to_published(p.spec.protocol, p.spec.method,
                                         p.column.train_images) for p in emb)
    fewer = plan(t, "torchvision", epochs=3)
    assert not any(compares_to_published(p.spec.protocol, p.spec.method,
                                         p.column.train_images) for p in fewer)
    assert len({p.spec.run_id for p in full}) == len(full)  # every run its own record
    small = plan(t, "embedded", methods=["cnn"], limit_train=100)
    assert [p.spec.limit_train for p in small] == [100, 100]
    sesn = plan(load_table("sesn-mnist-scale"), "torchvision")
    assert {p.spec.dataset for p in sesn} == {"mnist-scale", "mnist-scale+"}
    assert {p.spec.input for p in sesn} == {"native"}  # a fixed canvas: nothing to pad
    with pytest.raises(DataSourceError, match="--source torchvision"):
        plan(load_table("fourier-stl10"), "embedded")


def test_sesn_plus_column_trains_sesn_with_its_plus_hyper_parameters():
    """The authors trained SESN's "+" rows with their own configs (mnist_ses_*_28p): the
    "+" column builds sesn[plus=True], the other column and every other method stay plain,
    and the published value is still looked up by the method's name."""
    runs = plan(load_table("sesn-mnist-scale"), "torchvision")
    kwargs = {(p.column.key, p.spec.method): dict(p.spec.method_kwargs) for p in runs}
    assert kwargs[("28+", "sesn")] == {"plus": True} == kwargs[("28+", "sesn_vector")]
    assert kwargs[("28", "sesn")] == {} and kwargs[("28+", "cnn")] == {}
    plus = next(p for p in runs if p.column.key == "28+" and p.spec.method == "sesn")
    plain = next(p for p in runs if p.column.key == "28" and p.spec.method == "sesn")
    assert plus.spec.label == "sesn[plus=True]"
    # the option changes the model that is built (the published "+" scales and kernel)
    from scaleqbench.methods.sesn.models import mnist_hparams
    assert mnist_hparams("scalar", True) != mnist_hparams("scalar", False)
    published = _published(0.02, 0.001, dataset="mnist-scale+", method="sesn",
                           metric="test_err")
    records = [_record(p.spec, 0.97) for p in (plus, plain)]
    rows = comparison([plus, plain], records, published)
    row = rows[rows.column == "28+"].iloc[0]
    assert row.method == "sesn" and row.n == 1 and row["mean"] == pytest.approx(0.03)


def _record(spec, acc: float | None, eq: float = 0.1, status: str = "ok") -> RunRecord:
    rec = RunRecord.for_spec(spec, versions={}, status=status, device="cpu")
    if status == "ok":
        rec.set(test_acc=acc, scale_consistency=acc - 0.1, eq_err=eq, params=1)
    return rec


def _published(value: float, std: float, dataset: str = "mnist-res", method: str = "cnn",
               metric: str = "test_acc") -> pd.DataFrame:
    return pd.DataFrame([{"dataset": dataset, "method": method, "paper_method": method.upper(),
                          "paper_dataset": "MNIST-scale", "metric": metric, "value": value,
                          "std": std, "train_images": None, "table": "Table 9", "page": "7",
                          "source": "A paper", "verified_from": "its PDF"}])


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


def test_tiny_reproduce_end_to_end_on_the_embedded_source(tmp_path, cache_dir, capsys):
    out = tmp_path / "repro"
    argv = ["reproduce", "fourier-mnist", "--methods", "cnn", "--epochs", "1",
            "--limit-train", "120", "--limit-eval", "40", "--out", str(out), "--quiet",
            "--no-report"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "EMBEDDED, SCALED DOWN" in text and "embedded, scaled down" in text
    # --limit-train caps both columns to 120 images: one run fills both, made once
    assert "bench run: 1 runs" in text
    records, problems = RunStore(out).scan()
    assert not problems and len(records) == 1 and records[0].ok
    assert records[0].spec.limit_train == 120
    md = (out / "reproduce.md").read_text()
    assert "## 10k train" in md and "## 5,000 train" in md
    tables = md.split("## 10k train")[1].split("\n- ")[0]
    assert "published" not in tables and "Δ" not in tables and tables.count("| cnn ") == 2
    # resumable, like bench run: nothing is recomputed
    assert cli.main(argv) == 0
    assert "1 already done" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["reproduce"], "name a table"),
    (["reproduce", "fourier-stl10"], "no embedded scale-down"),
    (["reproduce", "fourier-mnist", "--methods", "timm:resnet18"], "fourier-mnist's methods"),
    (["reproduce", "fourier-mnist", "--limit-eval", "1"], "--limit-eval must be >= 2"),
    (["reproduce", "fourier-mnist", "--device", "foo"], "foo"),
])
def test_reproduce_user_errors_are_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_reproduce_list(capsys):
    assert cli.main(["reproduce", "--list"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in TABLES)


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


def test_each_reproduce_tables_split_sizes():
    """The splits each table's columns run on the full data: the Fourier paper's MNIST
    (10k / 10k / 50k, and the 5,000-image column) and STL-10 (its pooled 7,000 / 1,000 /
    5,000: 142 / 20 / 102 images per size of 49..97), SESN's MNIST-scale (10k / 2k / 50k)."""
    from scaleqbench.datasets import dataset_info
    from scaleqbench.datasets.rahman_yeh import STL10_POOLED_SIZES
    want = {"fourier-mnist": {("full", "mnist-res", (10_000, 10_000, 50_000), None),
                              ("5k", "mnist-res", (10_000, 10_000, 50_000), 5000)},
            "fourier-stl10": {("full", "stl10-res-pooled", (7_000, 1_000, 5_000), None)},
            "sesn-mnist-scale": {("28", "mnist-scale", (10_000, 2_000, 50_000), None),
                                 ("28+", "mnist-scale+", (10_000, 2_000, 50_000), None)}}
    for name, columns in want.items():
        got = {(c.key, c.dataset, dataset_info(c.dataset).counts, c.train_images)
               for c in load_table(name).columns}
        assert got == columns, name
    per_size = [n // len(STL10_POOLED_SIZES) for n in (7_000, 1_000, 5_000)]
    assert per_size == [142, 20, 102]
    assert {p.spec.dataset for p in plan(load_table("fourier-stl10"), "torchvision")} == {
        "stl10-res-pooled"}


def test_published_values_cite_the_authors_poster():
    pub = load_published()
    fourier = pub[pub.source.str.contains("Rahman")]
    assert len(fourier) == 44
    for cited in ("ashiq24/Scale_Equivarinat_Fourier_Layer", "branch web", "d3783c1",
                  "resource/poster_thumb.pdf"):
        assert fourier.verified_from.str.contains(cited, regex=False).all(), cited
    assert set(fourier[fourier.metric.str.startswith("eq")].metric) == {"eq_err_rahman_yeh"}
    assert set(fourier.dataset) == {"mnist-res", "stl10-res-pooled"}
    assert (fourier.page == "not verified").all()
