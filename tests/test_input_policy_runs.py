"""Input handling in runs: training, evaluation, equivariance and perf through the input
policy, one run shared by ``bench run``, and the scale-generalisation protocols (trained on
some sizes, tested on all).
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.spec import RunSpec
from scaleqbench.datasets import build, dataset_info
from scaleqbench.datasets.cache import cache_key
from scaleqbench.datasets.scaling import fourier_resize


TINY = ["--limit-train", "120", "--limit-eval", "60", "--epochs", "1", "--quiet", "--no-report"]


# ---- training and evaluation through the policy -----------------------------------------------

FORWARD: list[int] = []


FEATURES: list[int] = []


class Spy(nn.Module):
    """A small BN model that notes the size of every input it is given."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4),
                                   nn.ReLU())
        self.head = nn.Linear(4, num_classes)

    def features(self, x):
        FEATURES.append(x.shape[-1])
        return {"block1": self.block(x)}

    def forward(self, x):
        FORWARD.append(x.shape[-1])
        return self.head(self.block(x).mean((2, 3)))


@pytest.fixture()
def spy():
    methods.register_method("sb_spy", methods.MethodCard(family="test"), configs={"quick": {}})(Spy)
    FORWARD.clear(), FEATURES.clear()
    yield
    methods.registry._REGISTRY.pop("sb_spy", None)


@pytest.mark.parametrize("policy", ["pad", "upsample", "native"])
def test_training_and_evaluation_see_the_policy(spy, policy, cache_dir):
    from scaleqbench.bench.run.train import run_one

    spec = RunSpec("sb_spy", input=policy, epochs=1, limit_train=60, limit_eval=40,
                   eq_images=4, cache_dir=str(cache_dir))
    rec = run_one(spec)
    assert rec.ok, rec.error
    assert rec.input == policy
    if policy == "native":
        assert set(FORWARD) == set(range(8, 29))  # every size as it is
        assert rec.bn_recal["sizes"] and rec.per_size_acc_recal.keys() == rec.per_size_acc.keys()
    else:
        assert set(FORWARD) == {28}  # training, validation, test, views, invariance: the canvas
        assert rec.test_acc_recal is None and rec.per_size_acc_recal is None
    assert 8 in FEATURES  # feature maps are compared at native sizes under every policy


def test_bench_run_resolves_the_policy_and_one_run_is_shared(tmp_path, cache_dir, monkeypatch,
                                                             capsys):
    import scaleqbench.bench.launch.job as job

    ran: list[RunSpec] = []

    def fake_run_one(spec, out_dir, progress=False, context=None, **_):
        ran.append(spec)
        rec = RunRecord.for_spec(spec, status="ok", test_acc=0.5, params=1, **(context or {}))
        RunStore(out_dir).write(rec)
        return rec

    monkeypatch.setattr(job, "run_one", fake_run_one)
    out = tmp_path / "exp"
    assert cli.main(["run", "--methods", "cnn,fourier", "--out", str(out), *TINY]) == 0
    assert [(s.method, s.input) for s in ran] == [("cnn", "pad"), ("fourier", "native")]
    assert "| input" in capsys.readouterr().out
    ran.clear()
    # native for everyone: a new run for cnn; fourier's is the run it already has
    assert cli.main(["run", "--methods", "cnn,fourier", "--input", "native", "--out", str(out),
                     *TINY]) == 0
    assert [(s.method, s.input) for s in ran] == [("cnn", "native")]
    assert "1 already done" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["run", "--methods", "cnn", "--input", "crop", "--out", str(out)])
    assert "invalid choice: 'crop'" in capsys.readouterr().err


def _row(text: str) -> dict[str, str]:
    """The one row of the Markdown table in ``text``."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    header, row = ([c.strip() for c in ln.strip("|").split("|")] for ln in (lines[0], lines[2]))
    return dict(zip(header, row))


def test_equivariance_measures_features_natively_and_logits_through_the_policy(cache_dir,
                                                                               capsys):
    args = ["equivariance", "--methods", "cnn", "--config", "quick", "--images", "4",
            "--sizes", "8,16", "--init-seeds", "0", "--quiet"]
    assert cli.main(args) == 0  # published: cnn padded
    padded = _row(capsys.readouterr().out)
    assert cli.main([*args, "--input", "native"]) == 0
    native = _row(capsys.readouterr().out)
    assert (padded["input"], native["input"]) == ("pad", "native")
    for layer in ("block1", "block2", "block3"):  # the same model, images and sizes
        assert padded[layer] == native[layer]
    assert padded["logits"] != native["logits"]


def test_perf_feeds_the_canvas_under_pad(spy):
    from scaleqbench.bench.run.perf import run_perf

    rows = run_perf([("sb_spy", {})], [8, 12], batch=2, repeats=1, warmup=0, config="quick",
                    progress=False, input="published", canvas=28)
    assert [r["input"] for r in rows] == ["pad", "pad"] and [r["size"] for r in rows] == [8, 12]
    assert set(FORWARD) == {28}
    FORWARD.clear()
    run_perf([("sb_spy", {})], [8], batch=2, repeats=1, warmup=0, config="quick",
             progress=False)
    assert set(FORWARD) == {8}  # native, the default of bench perf


# ---- the scale-generalisation protocols -------------------------------------------------------

@pytest.mark.parametrize("name, train_sizes", [("mnist-res-train28", [28]),
                                               ("mnist-res-train20-28", list(range(20, 29)))])
def test_generalisation_splits_train_on_their_sizes_and_test_on_every_size(name, train_sizes,
                                                                           mnist_res):
    ds = build(name)
    assert ds.train.sizes == train_sizes and ds.val.sizes == train_sizes
    assert ds.test.sizes == list(range(8, 29)) and ds.sizes == mnist_res.sizes
    assert (len(ds.train), len(ds.val), len(ds.test)) == (3000, 500, 1500)
    # the same digits as mnist-res, only their sizes differ
    assert torch.equal(ds.train.full, mnist_res.train.full)
    assert torch.equal(ds.test.full, mnist_res.test.full)
    s = train_sizes[0]
    pos = ds.train.index[s][:5]
    torch.testing.assert_close(ds.train.images[s][:5],
                               fourier_resize(ds.train.full[pos].double(), s).float())
    assert ds.meta["train_sizes"] == train_sizes and dataset_info(name).train_sizes


def test_stl10_generalisation_on_a_fake_folder(tmp_path):
    from test_datasets import make_fake_stl10

    root = make_fake_stl10(tmp_path)
    ds = build("stl10-res-train69-97", source="torchvision", data_root=root)
    assert min(ds.train.sizes) >= 69 and min(ds.val.sizes) >= 69
    assert min(ds.test.sizes) < 69 and ds.method_config == "stl10"


def test_existing_datasets_keep_their_cache_keys():
    info = dataset_info("mnist-res")
    ident = {"dataset": "mnist-res", "protocol": info.protocol, "source": "embedded", "seed": 0,
             "sizes": list(info.sizes), "builder_version": info.version}
    assert cache_key("mnist-res", "embedded", 0) == hashlib.sha256(
        json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    assert cache_key("mnist-res-train28", "embedded", 0) != cache_key("mnist-res", "embedded", 0)


def test_list_datasets_shows_the_variants(capsys):
    assert cli.main(["list", "datasets"]) == 0
    rows = {ln.split("|")[1].strip(): ln for ln in capsys.readouterr().out.splitlines()[2:]}
    for name, trained in (("mnist-res-train28", "28"), ("mnist-res-train20-28", "20..28"),
                          ("stl10-res-train97", "97"), ("stl10-res-train69-97", "69..97")):
        cells = [c.strip() for c in rows[name].strip("|").split("|")]
        assert cells[2:4] == [{"mnist": "8..28", "stl10": "49..97"}[name[:5]], trained]
