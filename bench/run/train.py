"""One job: ``run_one(spec)`` builds the data and model, trains, evaluates and records.

The job is a pure function of its frozen :class:`~bench.spec.RunSpec`: every
random draw comes from generators seeded by ``spec.seed``. Training follows the
method's recipe for the preset's configuration; the best-validation weights
are kept and evaluated. A failure becomes a record with status ``failed`` and
its traceback; only Ctrl-C propagates (the sweep stops, finished records stay).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import logging
import platform
import random
import subprocess
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from scaleqbench import methods
from scaleqbench.bench.store.checkpoint import (
    TrainState,
    best_checkpoint_path,
    last_checkpoint_path,
    load_state,
    save_best,
    save_state,
)
from scaleqbench.bench.errors import DiskFullError, NonFiniteLossError
from scaleqbench.bench.run.devices import (
    StuckDeviceError,
    device_facts,
    is_sticky_cuda_error,
    numerics,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
    synchronize,
    training_autocast,
)
from scaleqbench.bench.run.evaluate import evaluate, predict, scale_groups
from scaleqbench.bench.run.loggers import EpochLogs, per_size_row, run_logs
from scaleqbench.bench.run.metrics import accuracy
from scaleqbench.bench.run.optimizer import build_optimizer
from scaleqbench.bench.run import recipes
from scaleqbench.bench.run.pause import pause_point
from scaleqbench.methods.protocol import implementation_of
from scaleqbench.bench.run.resolve import recipe_of, resolve
from scaleqbench.bench.run.train_steps import EpochTotals, on_device, to_device
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.spec import RunSpec, preset
from scaleqbench.datasets import load_or_build
from scaleqbench.datasets.augment import augment
from scaleqbench.datasets.sampler import iterate_batches
from scaleqbench.datasets.scaling import to_canvas
from scaleqbench.datasets.splits import ScaledDataset

__all__ = ["build_optimizer", "pick_device", "prepare_data", "run_one", "versions"]

log = logging.getLogger(__name__)


def pick_device(name: str = "auto") -> torch.device:
    """The device ``--device name`` means here (:func:`~bench.run.devices.resolve_device`)."""
    return resolve_device(name)


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    import timm
    from importlib.metadata import PackageNotFoundError, version

    try:  # as scaleqbench.bench.__version__ (the package root is no wing to import)
        ours = version("scaleqbench")
    except PackageNotFoundError:
        ours = "unknown"
    return {"scaleqbench": ours, "torch": torch.__version__,
            "python": platform.python_version(), "numpy": np.__version__,
            "timm": timm.__version__, "git": _git_revision()}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def prepare_data(spec: RunSpec) -> tuple[ScaledDataset, str | None]:
    """The dataset of a spec (cached), cut to the spec's limits."""
    ds, path = load_or_build(spec.dataset, source=spec.source, seed=spec.seed,
                             data_root=spec.data_root, cache_dir=spec.cache_dir)
    g = torch.Generator().manual_seed(spec.seed)
    if spec.limit_train:
        ds.train = ds.train.subset(spec.limit_train, g)
    if spec.limit_eval:
        ds.val = ds.val.subset(spec.limit_eval, g)
        ds.test = ds.test.subset(spec.limit_eval, g)
    return ds, str(path) if path else None


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _train(spec: RunSpec, ds: ScaledDataset, model: nn.Module, loss_fn: recipes.LossFn,
           recipe: recipes.TrainRecipe, device: torch.device, g: torch.Generator,
           progress: bool, last_ckpt: Path | None, logs: EpochLogs) -> TrainState:
    opt, sched = build_optimizer(model, recipe)
    st = (load_state(last_ckpt, model, opt, sched, g) if last_ckpt else None) or TrainState()
    if st.resumed_from:
        log.info("%s seed %d: resuming after epoch %d", spec.label, spec.seed, st.epoch)
    logs.start(st.history)
    val_groups = scale_groups(ds, ds.val)  # per-size validation accuracy, where sizes differ
    bar = tqdm(range(st.epoch, recipe.epochs), desc=f"{spec.label} s{spec.seed}", leave=False,
               disable=not progress, initial=st.epoch, total=recipe.epochs)
    train, val = on_device(ds.train, device), on_device(ds.val, device)  # small ones stay there
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        totals = EpochTotals(device, epoch + 1)
        for step, (x, y, _) in enumerate(iterate_batches(train, recipe.batch_size,
                                                         shuffle=True, generator=g)):
            if x.shape[0] < 2:  # BatchNorm cannot train on a single image
                continue
            # the input policy first: augmentation acts on what the model sees
            x = augment(ds.augment, to_canvas(to_device(x, device), spec.input, ds.full_size), g)
            y = to_device(y, device)
            with training_autocast(device, spec.precision):
                loss, logits = loss_fn(model, x, y)
            totals.add(step, loss, logits, y)  # raises NonFiniteLossError
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        train_loss, train_acc = totals.values()  # waits for the device
        sched.step()
        synchronize(device)
        st.train_s += time.perf_counter() - t0
        st.seen += totals.count
        val_preds = predict(model, val, 256, device, spec.input, ds.full_size)
        val_acc = accuracy(val_preds, ds.val.full_labels)
        st.history.append({"epoch": epoch + 1, "train_loss": train_loss,
                           "train_acc": train_acc, "val_acc": val_acc,
                           "lr": opt.param_groups[0]["lr"], "time_s": st.train_s,
                           **per_size_row(val_preds, ds.val.full_labels, val_groups)})
        logs.log_epoch(st.history[-1])  # the CSV beside the record, --log's loggers
        bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{val_acc:.3f}")
        if val_acc > st.best_acc:
            st.best_acc, st.best_epoch = val_acc, epoch + 1
            st.best_state = copy.deepcopy({k: v.detach().cpu()
                                           for k, v in model.state_dict().items()})
        st.epoch = epoch + 1
        if last_ckpt is not None:
            save_state(last_ckpt, st, model, opt, sched, g)
        pause_point(spec.run_id, st.epoch)  # tests only: see bench/run/pause.py
    bar.close()
    if st.best_state is not None:
        model.load_state_dict(st.best_state)
    return st


def run_one(spec: RunSpec, out_dir: str | Path | None = None, progress: bool = False,
            context: dict[str, Any] | None = None) -> RunRecord:
    """Train and evaluate one spec; write its record to ``out_dir/runs`` when given.

    ``context`` adds launcher facts to the record (job id, log path, command), by
    record field name. A job's record is written by :meth:`RunStore.write_job`, which
    respects its launcher's verdict on that job (``context["job_id"]``).
    """
    store = RunStore(out_dir) if out_dir is not None else None
    started, t_start = _now(), time.perf_counter()
    last_ckpt = last_checkpoint_path(Path(out_dir), spec.run_id) if out_dir else None
    results: dict[str, Any] = {}

    def record(**outcome: Any) -> RunRecord:
        # a run that built its model has its versions already, with how the model computed
        # (versions() asks git: once per run)
        found = {"versions": results.get("versions") or versions()}
        return RunRecord.for_spec(spec, **(context or {}), started_at=started,
                                  **{**results, **found}, **outcome,
                                  wall_time_s=time.perf_counter() - t_start, finished_at=_now())

    try:
        for stage in _stages(spec, out_dir, progress, last_ckpt):
            results.update(stage)
        outcome: dict[str, Any] = {"status": "ok"}
    except KeyboardInterrupt:
        raise
    except DiskFullError as exc:
        # every later write would fail too: record the failure if the record still fits,
        # then stop the sweep with the file system's one line
        if store is not None:
            with contextlib.suppress(DiskFullError):  # else the run stays "to run"
                store.write_job(record(error=traceback.format_exc()))
        raise exc from None
    except Exception as exc:
        outcome = {"error": traceback.format_exc()}
        note = ""
        if isinstance(exc, NonFiniteLossError):
            outcome["failed_epoch"] = exc.epoch
            note = _drop_diverged_state(last_ckpt)
        log.warning("run %s (%s seed %d) failed: %s%s", spec.run_id, spec.label, spec.seed, exc,
                    note)
        if is_sticky_cuda_error(exc):  # no later run of this process could use the GPU
            if store is not None:
                store.write_job(record(**outcome))
            raise StuckDeviceError(spec.run_id, exc) from None
    done = record(**outcome)
    if store is not None:
        store.write_job(done)
    return done


def _stages(spec: RunSpec, out_dir: str | Path | None, progress: bool,
            last_ckpt: Path | None) -> Iterator[dict[str, Any]]:
    """The run, stage by stage: each stage yields its results as record fields, so a run that
    fails keeps those of the stages before (where it ran, what model it built...)."""
    g = _seed_everything(spec.seed)
    device = pick_device(spec.device)
    # CPU results depend on the thread count (summation order)
    yield {**device_facts(device), "threads": torch.get_num_threads()}
    reset_peak_memory(device)
    # the CPU's kernels are deterministic already: the settings are for GPU runs
    with numerics(spec.precision, spec.deterministic and device.type == "cuda") as unsure:
        yield from _compute(spec, out_dir, progress, last_ckpt, device, g)
    if device.type == "cuda":
        yield {"nondeterministic_ops": unsure}


def _compute(spec: RunSpec, out_dir: str | Path | None, progress: bool, last_ckpt: Path | None,
             device: torch.device, g: torch.Generator) -> Iterator[dict[str, Any]]:
    """The stages of :func:`_stages` that compute, under the run's numerics."""
    ds, cache = prepare_data(spec)
    config = preset(spec.preset).config or ds.method_config
    # what the spec says it computes with (a sweep's spec was resolved when it was expanded)
    resolved = spec.resolved or resolve(spec).resolved
    recipe, entry = recipe_of(resolved), methods.get_method(spec.method)
    model = entry.builder(in_channels=ds.in_channels, num_classes=ds.num_classes,
                          **dict(resolved.config)).to(device)
    # how the model computes here sets the speed, not the numbers (fourier: its CPU kernel)
    yield {"versions": {**versions(), **implementation_of(model, device)},
           "config": config, "config_values": resolved.to_json()["config"],
           "method_source": entry.source, "epochs": recipe.epochs,
           "recipe": dataclasses.asdict(recipe),
           "params": sum(p.numel() for p in model.parameters()), "dataset_cache": cache,
           # the sizes it was trained on: the report shades them (scale generalisation)
           "dataset_meta": {**ds.meta, "train_sizes": ds.train.sizes},
           "split_sizes": {"train": len(ds.train), "val": len(ds.val), "test": len(ds.test)}}
    with run_logs(spec, out_dir) as logs:
        st = _train(spec, ds, model, recipes.loss_for(spec.method, config), recipe, device, g,
                    progress, last_ckpt, logs)
    yield {"val_acc": st.best_acc if st.best_epoch else None,  # None: no epoch validated
           "best_epoch": st.best_epoch, "history": st.history,
           "train_time_s": st.train_s, "train_img_per_s": st.seen / max(st.train_s, 1e-9),
           "resumed_from_epoch": st.resumed_from}
    yield evaluate(model, ds, device, eq_images=spec.eq_images, seed=spec.seed,
                   progress=progress, input=spec.input,
                   consistency_images=spec.consistency_images)
    yield {"peak_mem_mb": peak_memory_mb(device)}
    if out_dir is not None and st.best_state is not None:
        path = best_checkpoint_path(Path(out_dir), spec.run_id)
        yield {"checkpoint": str(save_best(path, spec, config, st.best_state))}
    if last_ckpt is not None:
        last_ckpt.unlink(missing_ok=True)  # the run is complete: nothing left to resume


def _drop_diverged_state(last_ckpt: Path | None) -> str:
    """Remove the per-epoch state of a run whose loss went non-finite; what to tell the user.

    The state was saved after the epoch before the divergence: its weights are already on
    the way there, and a retry that resumed from it (with every RNG restored) would replay
    the divergence step for step. A retry starts from epoch 0 instead.
    """
    if last_ckpt is None or not last_ckpt.is_file():
        return ""
    last_ckpt.unlink(missing_ok=True)
    return f"; removed its per-epoch checkpoint {last_ckpt.name}: a retry starts from epoch 0"
