"""The checkpoint formats: best weights (save_best / load_best) and the per-epoch training state
(save_state / load_state), including files that are torn, foreign or made for another model."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest
import torch
from torch import nn

import scaleqbench.bench.run.train as train
from scaleqbench.bench.store.checkpoint import (
    TrainState,
    best_checkpoint_path,
    cuda_state_for,
    last_checkpoint_path,
    load_best,
    load_state,
    save_best,
    save_state,
)
from scaleqbench.bench.errors import CheckpointError
from scaleqbench.bench.spec import RunSpec


def _parts(width: int = 4, seed: int = 0):
    """A small model with its optimiser, scheduler and batch generator, as _train makes them."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    return model, opt, sched, torch.Generator().manual_seed(seed)


def _one_step(model, opt, sched) -> None:
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    sched.step()


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _saved_state(tmp_path, width: int = 4):
    model, opt, sched, g = _parts(width, seed=1)
    _one_step(model, opt, sched)
    path = last_checkpoint_path(tmp_path, "run")
    save_state(path, TrainState(epoch=1, best_acc=0.5, history=[{"epoch": 1}]), model, opt,
               sched, g)
    return path, model


# --- per-epoch training state ------------------------------------------------------------------

def test_state_round_trip_restores_everything(tmp_path):
    path, trained = _saved_state(tmp_path)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    torch.manual_seed(5)  # the saved RNGs were drawn at save time: reseed to compare after load
    model, opt, sched, g = _parts(seed=2)
    st = load_state(path, model, opt, sched, g)
    assert st is not None and st.epoch == 1 and st.resumed_from == 1 and st.best_acc == 0.5
    assert _same(_weights(model), _weights(trained))
    assert sched.last_epoch == 1 and opt.state_dict()["state"]
    assert (random.random(), np.random.rand(), torch.rand(1)) != expected  # RNGs came back too


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "json"])
def test_an_unreadable_state_restarts_with_one_warning(tmp_path, caplog, damage):
    path, _ = _saved_state(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x93NUMPY\x00" * 50,
                      "empty": b"", "json": json.dumps({"epoch": 3}).encode()}[damage])
    model, opt, sched, g = _parts(seed=2)
    before = _weights(model)
    with caplog.at_level(logging.WARNING, logger="scaleqbench.bench.store.checkpoint"):
        assert load_state(path, model, opt, sched, g) is None
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert str(path) in message and "restarts from epoch 0" in message and "\n" not in message
    assert _same(_weights(model), before)


def test_a_state_for_another_model_changes_nothing(tmp_path, caplog):
    """Layers whose shapes match must not be loaded when the rest fails (a partial restore
    would start the 'fresh' run from half-trained weights)."""
    path, _ = _saved_state(tmp_path, width=4)
    model, opt, sched, g = _parts(width=6, seed=2)  # first layer differs, so does the second
    model[2] = nn.Linear(4, 2)  # ... but make the last layer fit: it would load on its own
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    before = _weights(model)
    torch_rng, gen_state = torch.get_rng_state(), g.get_state()
    with caplog.at_level(logging.WARNING, logger="scaleqbench.bench.store.checkpoint"):
        assert load_state(path, model, opt, sched, g) is None
    assert _same(_weights(model), before)
    assert torch.equal(torch.get_rng_state(), torch_rng) and torch.equal(g.get_state(), gen_state)
    assert not opt.state_dict()["state"] and sched.last_epoch == 0
    assert "size mismatch" in caplog.text or "Error(s) in loading" in caplog.text


def test_no_state_file_is_silent(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert load_state(tmp_path / "none.last.pt", *_parts()) is None
    assert not caplog.records


def test_a_corrupt_state_restarts_training_and_says_so(tmp_path, cache_dir, caplog):
    spec = RunSpec("cnn", epochs=1, limit_train=60, limit_eval=30, eq_images=4,
                   cache_dir=str(cache_dir), experiment="corrupt", device="cpu")
    clean = train.run_one(spec, tmp_path / "clean")
    last = last_checkpoint_path(tmp_path / "torn", spec.run_id)
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 torn zip")
    with caplog.at_level(logging.WARNING, logger="scaleqbench.bench.store.checkpoint"):
        torn = train.run_one(spec, tmp_path / "torn")
    assert torn.status == "ok" and torn.resumed_from_epoch is None
    assert [r.getMessage() for r in caplog.records if str(last) in r.getMessage()]
    for key in ("test_acc", "val_acc", "per_size_acc", "history"):
        strip = lambda v: [{k: x for k, x in h.items() if k != "time_s"} for h in v] \
            if key == "history" else v  # noqa: E731
        assert strip(getattr(torn, key)) == strip(getattr(clean, key)), key
    assert not last.exists()  # the finished run removed it
    best = load_best(torn.checkpoint)
    assert best.spec == spec and best.spec.run_id == spec.run_id and best.config == torn.config


# --- CUDA generator states ---------------------------------------------------------------------

def _with_cuda_states(path, states) -> None:
    """Rewrite a per-epoch state as another machine would have saved it: ``states`` as its
    CUDA generator state (a list: one per GPU visible then, as earlier versions saved)."""
    payload = torch.load(path, weights_only=False)
    payload["cuda_rng"] = states
    torch.save(payload, path)


def test_states_saved_for_more_gpus_than_visible_still_resume(tmp_path, monkeypatch, caplog):
    """A run saved on a node with 4 GPUs visible (one state each) resumes where 1 is visible,
    instead of restarting from epoch 0 (set_rng_state_all would raise there)."""
    path, trained = _saved_state(tmp_path)
    _with_cuda_states(path, [torch.zeros(16, dtype=torch.uint8)] * 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                        lambda states: pytest.fail("restored a state onto every GPU"))
    model, opt, sched, g = _parts(seed=2)
    with caplog.at_level(logging.WARNING, logger="scaleqbench.bench.store.checkpoint"):
        st = load_state(path, model, opt, sched, g)
    assert st is not None and st.epoch == 1 and not caplog.records
    assert _same(_weights(model), _weights(trained))


def test_the_cuda_state_restored_is_the_run_gpus_own():
    a, b = torch.full((16,), 1, dtype=torch.uint8), torch.full((16,), 2, dtype=torch.uint8)
    assert cuda_state_for([a, b], torch.device("cpu")) is None  # a CPU run has none to set
    assert cuda_state_for([a, b], torch.device("cuda")) is a
    assert cuda_state_for([a, b], torch.device("cuda:1")) is b
    assert cuda_state_for([a, b], torch.device("cuda:3")) is a  # fewer saved: the first
    assert cuda_state_for(b, torch.device("cuda:5")) is b  # one state: the run's GPU's
    assert cuda_state_for([], torch.device("cuda")) is None
    assert cuda_state_for(None, torch.device("cuda")) is None


def test_a_gpu_run_saves_and_restores_only_its_own_gpus_state(tmp_path, monkeypatch):
    """Saving asks for the generator of the model's GPU only (every GPU's would start a
    context on each), and loading sets it on that GPU."""
    from scaleqbench.bench.store import checkpoint

    state = torch.arange(16, dtype=torch.uint8)
    calls = []
    monkeypatch.setattr(checkpoint, "_device_of", lambda model: torch.device("cuda:1"))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every GPU"))
    monkeypatch.setattr(torch.cuda, "get_rng_state",
                        lambda device: calls.append(("get", device)) or state)
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda s, device: calls.append(("set", device, s.tolist())))
    path, _ = _saved_state(tmp_path)
    assert torch.equal(torch.load(path, weights_only=False)["cuda_rng"], state)
    assert load_state(path, *_parts(seed=2)) is not None
    # saved; read again as the state to put back should the restore fail; restored
    assert calls == [("get", torch.device("cuda:1")), ("get", torch.device("cuda:1")),
                     ("set", torch.device("cuda:1"), state.tolist())]


# --- best weights ------------------------------------------------------------------------------

def test_best_round_trip(tmp_path):
    model, *_ = _parts()
    spec = RunSpec("cnn", seed=3, method_kwargs=(("channels", (4, 8, 12)),))
    path = save_best(best_checkpoint_path(tmp_path, "abc"), spec, "quick", _weights(model))
    assert path == tmp_path / "checkpoints" / "abc.pt"
    best = load_best(path)
    assert best.spec == spec and best.config == "quick"
    assert _same(best.state_dict, _weights(model))


@pytest.mark.parametrize("content, message", [
    ("text", "is not a scaleqbench checkpoint"),
    ("json", "is not a scaleqbench checkpoint"),
    ("tensor", "no spec, config and state_dict"),
    ("no-config", "no spec, config and state_dict"),
    ("truncated", "is not a scaleqbench checkpoint"),
    ("missing", "no checkpoint file"),
    ("last", "per-epoch training state"),
])
def test_load_best_rejects_what_is_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / ("run.last.pt" if content == "last" else "run.pt")
    if content == "text":
        path.write_text("hello\nworld\n")
    elif content == "json":
        path.write_text(json.dumps({"spec": {"method": "cnn"}}))
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    elif content == "no-config":
        torch.save({"spec": {"method": "cnn"}, "state_dict": {}}, path)
    elif content == "truncated":
        save_best(path, RunSpec("cnn"), "mnist", {"w": torch.zeros(1000)})
        path.write_bytes(path.read_bytes()[:300])
    elif content == "last":
        _saved_state(tmp_path)  # writes checkpoints/run.last.pt
        path = last_checkpoint_path(tmp_path, "run")
    with pytest.raises(CheckpointError) as info:
        load_best(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text
    assert "checkpoints/<run-id>.pt" in text
