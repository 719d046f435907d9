"""Synthetic records for the report tests and the report built from them once per module.

The records cover what real sweeps produce: several datasets and sources, failed
runs, missing metrics, a single seed, a method in one dataset only, a method
variant, float-precision equivariance errors (and an exact zero), per-image
outcomes (and a record without them).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaleqbench.bench.store.per_image import pack_bits
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.report import build_report, tables
from scaleqbench.bench.report.data import load
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
    for r in rows:  # cnn's step times carry their interval over rounds; the others' do not
        if r["method"] == "cnn":
            r["train_step_s_interval"] = [0.9 * r["train_step_s"], 1.2 * r["train_step_s"]]
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
