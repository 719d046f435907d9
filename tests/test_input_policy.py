"""Input handling as part of the protocol: how an image smaller than the canvas reaches a model.

The operators (``native``, ``pad``, ``upsample``), the ``published`` policy resolved per
method into the spec, the record and the leaderboard key, and the leaderboard and report
rows it tells apart. (Training, evaluation and the scale-generalisation protocols:
tests/test_input_policy_runs.py.)
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

from scaleqbench import methods
from scaleqbench.bench import spec as spec_module
from scaleqbench.bench.report.leaderboard import comparison, format_leaderboard, records_frame, summarize
from scaleqbench.bench.store.record import RunRecord, protocol_key
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.report import _train_range, input_labels, plots
from scaleqbench.bench.report.data import per_size_frame, sections
from scaleqbench.bench.spec import Protocol, RunSpec, expand, resolve_input
from scaleqbench.datasets.scaling import INPUT_POLICIES, fourier_resize, pad_to_canvas, to_canvas


# ---- the operators ----------------------------------------------------------------------------

@pytest.mark.parametrize("s", [8, 11, 27, 28])
def test_padded_images_are_centred_and_zero_outside(s):
    x = torch.rand(3, 2, s, s) + 0.5  # no zero inside the image
    y = pad_to_canvas(x, 28)
    lo = (28 - s) // 2  # an odd margin's extra row and column go after the image
    assert y.shape == (3, 2, 28, 28)
    assert torch.equal(y[..., lo:lo + s, lo:lo + s], x)
    inside = torch.zeros(28, 28, dtype=torch.bool)
    inside[lo:lo + s, lo:lo + s] = True
    assert (y[..., ~inside] == 0).all() and (y[..., inside] > 0).all()
    assert torch.equal(to_canvas(x, "pad", 28), y)
    with pytest.raises(ValueError, match="smaller"):
        pad_to_canvas(torch.zeros(1, 1, 29, 29), 28)


def test_upsample_is_fourier_resize_and_native_is_the_image():
    x = torch.randn(4, 1, 13, 13, dtype=torch.float64)
    assert torch.equal(to_canvas(x, "upsample", 28), fourier_resize(x, 28))
    assert to_canvas(x, "native", 28) is x
    full = torch.randn(2, 1, 28, 28)
    assert all(to_canvas(full, p, 28) is full for p in INPUT_POLICIES)  # at the canvas: as is
    with pytest.raises(ValueError, match="unknown input policy"):
        to_canvas(x, "published", 28)  # resolved before it reaches an image


# ---- the published policy, resolved per method into the spec, record and key -----------------

def test_the_published_policy_resolves_per_method():
    assert spec_module.INPUT_POLICIES == INPUT_POLICIES  # the torch-free copy agrees
    assert methods.get_method("fourier").input == "native"
    for name in ("cnn", "sesn", "dss"):
        assert methods.get_method(name).input == "pad"  # the registry default
    for dataset in ("mnist-res", "stl10-res", "mnist-res-train28"):
        assert resolve_input("published", "fourier", dataset) == "native"
        assert resolve_input("published", "cnn", dataset) == "pad"
        assert resolve_input("upsample", "fourier", dataset) == "upsample"
    # a fixed canvas: every policy feeds the same pixels, so it is one run
    for policy in ("published", "pad", "upsample", "native"):
        assert resolve_input(policy, "cnn", "mnist-scale") == "native"
    specs = expand([("cnn", {}), ("fourier", {})], "mnist-res", [0, 1])
    assert [(s.method, s.input) for s in specs] == [("cnn", "pad")] * 2 + [
        ("fourier", "native")] * 2
    with pytest.raises(ValueError, match="resolve"):
        RunSpec("cnn", input="published")


def test_a_method_declares_its_published_input():
    @methods.register_method("sb_upsampled", methods.MethodCard(family="test", input="upsample"))
    def build_it(in_channels=1, num_classes=10):
        return nn.Identity()
    try:
        assert resolve_input("published", "sb_upsampled", "mnist-res") == "upsample"
        with pytest.raises(ValueError, match="input must be one of"):
            methods.MethodCard(family="test", input="crop")
    finally:
        methods.registry._REGISTRY.pop("sb_upsampled", None)


def test_the_record_and_the_key_carry_the_policy(tmp_path):
    native, pad = RunSpec("cnn"), RunSpec("cnn", input="pad")
    assert native.run_id != pad.run_id
    # the default is left out of the hash: every run made before the policy keeps its id
    blob = json.dumps({"method": "cnn"}, sort_keys=True).encode()
    assert native.run_id == f"cnn-s0-{hashlib.sha256(blob).hexdigest()[:12]}"
    rec = RunRecord.for_spec(pad, status="ok", test_acc=0.5)
    path = RunStore(tmp_path).write(rec)
    back = RunRecord.from_json(path.read_text(), path)
    stored = json.loads(path.read_text())
    assert back.input == "pad" and stored["spec"]["protocol"]["input"] == "pad"
    assert protocol_key(back).protocol.input == "pad"
    assert protocol_key(back) != protocol_key(RunRecord.for_spec(native))
    # an older record (schema 3: the spec flat, copied beside it; no policy anywhere) reads
    # as what it was: native
    spec = stored["spec"]
    old = {**stored, "schema_version": 3, "run_id": native.run_id, "method": "cnn",
           "dataset": "mnist-res",
           "spec": {**{k: v for k, v in spec.items() if k != "protocol"},
                    **{k: v for k, v in spec["protocol"].items() if k != "input"}}}
    legacy = RunRecord.from_json(json.dumps(old), tmp_path / "old.json")
    assert legacy.input == "native" and protocol_key(legacy).protocol == Protocol()
    old["input"] = "upsample"  # a flat copy that disagrees with its spec is corrupt
    with pytest.raises(Exception, match="disagrees"):
        RunRecord.from_json(json.dumps(old), tmp_path / "bad.json")


# ---- the leaderboard and the report -----------------------------------------------------------

def _record(method: str, policy: str, acc: float, **facts) -> RunRecord:
    spec = RunSpec(method, input=policy, epochs=1)
    return RunRecord.for_spec(spec, status="ok", test_acc=acc, eq_err=0.1, params=10,
                              scale_consistency=0.5, **facts)


def test_runs_differing_only_in_input_are_two_rows_of_one_comparison():
    recs = [_record("cnn", "pad", 0.9), _record("cnn", "native", 0.4, test_acc_recal=0.7,
                                                scale_consistency_recal=0.6),
            _record("fourier", "native", 0.8)]
    board = summarize(records_frame(recs))
    assert len(board) == 3
    assert len({comparison(p) for p in board.protocol}) == 1 and len(sections(board)) == 1
    # one ranking; the recalibrated run is judged on its recalibrated accuracy
    assert list(zip(board.method, board.input)) == [("cnn", "pad"), ("fourier", "native"),
                                                    ("cnn", "native")]
    assert list(board.test_acc_mean) == [0.9, 0.8, 0.7]
    assert board.scale_consistency.iloc[2] == 0.6 and board.test_acc_plain_mean.iloc[2] == 0.4
    text = format_leaderboard(board)
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    assert "input" in header and "acc, trained BN stats (%)" in header
    # all padded: still said, though no two rows differ in it
    only_pad = format_leaderboard(summarize(records_frame(recs[:1])))
    assert "| input" in only_pad.splitlines()[0]
    # all native (every record before the policy existed): no column
    assert "input" not in format_leaderboard(summarize(records_frame(recs[2:]))).splitlines()[0]


def test_figures_draw_each_policy_of_a_method_apart_and_shade_the_training_sizes():
    sizes = {str(s): 0.5 for s in range(8, 29)}
    recs = [_record("cnn", "pad", 0.9, per_size_acc=sizes, dataset_meta={"train_sizes": [28]}),
            _record("cnn", "native", 0.4, per_size_acc=sizes,
                    dataset_meta={"train_sizes": [28]}),
            _record("fourier", "native", 0.8, per_size_acc=sizes,
                    dataset_meta={"train_sizes": [28]})]
    frame = input_labels(per_size_frame(recs))
    assert set(frame.method) == {"cnn[input=pad]", "cnn[input=native]", "fourier"}
    assert set(frame.x[frame.trained]) == {28.0}
    assert _train_range(frame) == (28.0, 28.0)
    fig = plots.acc_vs_size(frame, plots.Palette(list(frame.method)), "t", _train_range(frame))
    (ax,) = fig.axes
    spans = [p for p in ax.patches if p.get_label() == "training sizes"]
    assert len(spans) == 1
    span = spans[0]  # a Rectangle or (matplotlib < 3.9) a Polygon: its x extent in data units
    xs = span.get_patch_transform().transform(span.get_path().vertices)[:, 0]
    assert (xs.min(), xs.max()) == (pytest.approx(27.5), pytest.approx(28.5))
    every = per_size_frame([_record("cnn", "pad", 0.9, per_size_acc=sizes)])
    assert _train_range(every) is None  # trained on every size: nothing to shade
