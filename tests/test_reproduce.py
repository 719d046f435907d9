"""``bench reproduce``: the table files, the table -> run-spec mapping, the split sizes and
sources of each table, and a tiny end-to-end run on the embedded source. (The comparison
math: tests/test_reproduce_compare.py.)
"""

from __future__ import annotations

import pytest

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.errors import DataSourceError, UnknownNameError
from scaleqbench.bench.published.reference import compares_to_published, load_published
from scaleqbench.bench.published.table_files import (
    METRICS,
    list_tables,
    load_table,
    parse_table,
)
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.published.reproduce import comparison, plan
from scaleqbench.datasets import DATASETS

from reproduce_support import _published, _record


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
