"""A run interrupted after an epoch resumes from its checkpoint and ends exactly where an
uninterrupted run ends (CPU)."""

from __future__ import annotations

import pytest

import scaleqbench.bench.run.train as train
from scaleqbench.bench.store.checkpoint import last_checkpoint_path
from scaleqbench.bench.spec import RunSpec

METRICS = ("test_acc", "val_acc", "best_epoch", "scale_consistency", "eq_err", "per_size_acc")


def spec(tmp_path) -> RunSpec:
    # on the CPU wherever the test runs: bitwise equality is the CPU's promise (GPU resumes
    # are tests/test_gpu.py's)
    return RunSpec("cnn", epochs=3, limit_train=150, limit_eval=60, eq_images=16,
                   cache_dir=str(tmp_path / "cache"), experiment="resume", device="cpu")


def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    whole = train.run_one(spec(tmp_path), tmp_path / "a")
    assert whole.ok and whole.resumed_from_epoch is None

    real_predict = train.predict
    calls = []

    def preempt_after_two_epochs(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the validation pass of epoch 3: the checkpoint of epoch 2 exists
            raise KeyboardInterrupt
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(train, "predict", preempt_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train.run_one(spec(tmp_path), tmp_path / "b")
    assert last_checkpoint_path(tmp_path / "b", spec(tmp_path).run_id).is_file()
    monkeypatch.setattr(train, "predict", real_predict)

    resumed = train.run_one(spec(tmp_path), tmp_path / "b")
    assert resumed.ok and resumed.resumed_from_epoch == 2
    for key in METRICS:
        assert getattr(resumed, key) == getattr(whole, key), key
    strip = [{k: v for k, v in h.items() if k != "time_s"} for h in whole.history]
    assert [{k: v for k, v in h.items() if k != "time_s"} for h in resumed.history] == strip
    assert not last_checkpoint_path(tmp_path / "b", spec(tmp_path).run_id).exists()
