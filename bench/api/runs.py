"""A run's trained model in one call: its best checkpoint loaded into a freshly created model.

``bench run --out DIR`` keeps each finished run's best-validation weights in
``DIR/checkpoints/<run-id>.pt`` beside its record ``DIR/runs/<run-id>.json``
(:mod:`bench.store.checkpoint`). :func:`load_run` finds the checkpoint from
either file, or from a run id and the folder, rebuilds the model the run
trained (its method, options and configuration, through
:func:`scaleqbench.methods.create`) and loads the weights.

A checkpoint does not store the data's channel and class counts, which size the
model's first and last layers: unless they are given, :func:`load_run` builds
the model for grey images (1 channel) and for colour images (3 channels), colour
first for a run on STL-10, 10 classes (every dataset of the benchmark), and keeps
the one whose every weight fits the checkpoint (a strict ``load_state_dict``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from scaleqbench import methods
from scaleqbench.bench.errors import CheckpointError, CorruptRecordError
from scaleqbench.bench.store.checkpoint import BestCheckpoint, best_checkpoint_path, load_best
from scaleqbench.bench.store.record import RunRecord

__all__ = ["checkpoint_of", "load_run", "model_from_checkpoint"]

#: the class count of every dataset of the benchmark
NUM_CLASSES = 10


def _experiment_of(record_path: Path) -> Path:
    """The experiment folder of a record file (``<experiment>/runs/<id>.json``)."""
    runs = record_path.parent
    return runs.parent if runs.name == "runs" else runs


def checkpoint_of(record: RunRecord) -> Path | None:
    """The best-weights file of ``record``'s run, None when there is none: in the checkpoints
    folder beside the record's ``runs/`` folder (where ``bench run`` keeps it, so a moved
    experiment folder still finds it), else where the record says it was written."""
    candidates = []
    if record.path is not None:
        candidates.append(best_checkpoint_path(_experiment_of(Path(record.path)), record.run_id))
    if record.checkpoint:
        candidates.append(Path(record.checkpoint))
    return next((p for p in candidates if p.is_file()), None)


def _read_record(path: Path) -> RunRecord:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(path, f"cannot read it: {exc}") from None
    return RunRecord.from_json(text, path)


def _record_checkpoint(record: RunRecord) -> Path:
    found = checkpoint_of(record)
    if found is not None:
        return found
    if not record.ok:
        why = record.last_error_line or "no error recorded"
        raise CheckpointError(f"run {record.run_id} failed ({why}): a failed run leaves no "
                              "checkpoint")
    where = best_checkpoint_path(_experiment_of(Path(record.path)), record.run_id) \
        if record.path else record.checkpoint
    raise CheckpointError(f"run {record.run_id} has no checkpoint file (looked for {where}); "
                          "checkpoints stay where the run wrote them: re-run it with bench "
                          "run --out to make one")


def _by_run_id(run_id: str, folder: Path) -> tuple[Path, RunRecord]:
    runs = folder / "runs" if (folder / "runs").is_dir() else folder
    path = runs / f"{run_id}.json"
    if not path.is_file():
        known = sorted(p.stem for p in runs.glob("*.json"))
        hint = (f"runs there: {', '.join(known[:5])}{', ...' if len(known) > 5 else ''}"
                if known else "it holds no run records")
        raise CheckpointError(f"no run {run_id!r} in {folder} (no {path}); {hint}")
    record = _read_record(path)
    return _record_checkpoint(record), record


def _locate(run: str | os.PathLike, folder: str | os.PathLike | None
            ) -> tuple[Path, RunRecord | None]:
    """(checkpoint file, record or None) for what :func:`load_run` was given."""
    if folder is not None:
        return _by_run_id(str(run), Path(folder))
    path = Path(run)
    if not path.exists():
        if path.suffix or os.sep in str(run):
            raise CheckpointError(f"no such file {path}; pass a checkpoints/<run-id>.pt or a "
                                  "runs/<run-id>.json written by bench run")
        raise CheckpointError(f"{run!r} is not a file; to load a run by its id, pass its "
                              "experiment folder too: load_run(run_id, folder)")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass a run's checkpoint or record file, or "
                              "a run id with this folder: load_run(run_id, folder)")
    if path.suffix == ".json":
        record = _read_record(path)
        return _record_checkpoint(record), record
    beside = path.parent.parent / "runs" / f"{path.name.removesuffix('.pt')}.json"
    try:
        return path, _read_record(beside) if beside.is_file() else None
    except CorruptRecordError:
        return path, None  # the weights do not need it; load_results names damaged records


def _channel_guesses(dataset: str) -> tuple[int, ...]:
    return (3, 1) if dataset.startswith("stl10") else (1, 3)


def model_from_checkpoint(ckpt: BestCheckpoint, path: str | os.PathLike = "checkpoint",
                          in_channels: int | None = None, num_classes: int | None = None
                          ) -> nn.Module:
    """A fresh model of ``ckpt``'s method, options and configuration with its weights loaded
    (see the module docstring for the channel and class counts); :class:`CheckpointError`
    when they fit no such model. The global random state is left as it was."""
    spec = ckpt.spec
    try:
        methods.get_method(spec.method)
    except methods.UnknownMethodError as exc:
        raise CheckpointError(f"{path} holds a {spec.method!r} model, a method not registered "
                              f"here ({exc}); install the package that provides it") from None
    channels = (in_channels,) if in_channels is not None else _channel_guesses(spec.dataset)
    classes = num_classes if num_classes is not None else NUM_CLASSES
    first_error = None
    for c in channels:
        with torch.random.fork_rng(devices=[]):  # creating a model draws its initial weights
            model = methods.create(spec.method, in_channels=c, num_classes=classes,
                                   config=ckpt.config, **dict(spec.method_kwargs))
        try:
            model.load_state_dict(ckpt.state_dict)
        except RuntimeError as exc:
            first_error = first_error or exc
            continue
        return model.eval()
    why = str(first_error).strip().splitlines()
    why = why[1].strip() if len(why) > 1 else (why[0] if why else "")
    raise CheckpointError(f"{path} does not fit a {spec.label} model (config {ckpt.config!r}, "
                          f"{' or '.join(map(str, channels))} input channel(s), {classes} "
                          f"classes): {why}; pass in_channels= and num_classes= if it was "
                          "trained on other data")


def load_run(run: str | os.PathLike, folder: str | os.PathLike | None = None, *,
             device: torch.device | str | None = None, in_channels: int | None = None,
             num_classes: int | None = None) -> tuple[nn.Module, RunRecord | None]:
    """The trained model of a run, in eval mode, and its record.

    ``run``: a best-weights checkpoint (``<experiment>/checkpoints/<run-id>.pt``), a run
    record (``<experiment>/runs/<run-id>.json``), or, with ``folder`` (an experiment
    folder), a run id. The record is the one beside the checkpoint; None when a bare
    checkpoint has none. ``device``: where to move the model (default: the CPU);
    ``in_channels`` / ``num_classes``: the data's counts, when they are not the
    benchmark's (see the module docstring).

    Raises :class:`~bench.errors.CheckpointError` (one line saying what to do) for a
    missing file, a file that is not a checkpoint (a per-epoch training state included),
    a run without one (failed, or its checkpoints not kept), an unknown run id, or
    weights that fit no model of the run's method; a damaged record given as ``run``
    raises :class:`~bench.errors.CorruptRecordError`.
    """
    ckpt_path, record = _locate(run, folder)
    ckpt = load_best(ckpt_path)
    if record is not None and ckpt.spec != record.spec:  # same protocol, method and seed
        raise CheckpointError(f"{ckpt_path} holds the weights of another run ({ckpt.spec.label} "
                              f"seed {ckpt.spec.seed} on {ckpt.spec.dataset}) than the record "
                              f"{record.path} ({record.spec.label} seed {record.spec.seed} on "
                              f"{record.spec.dataset})")
    model = model_from_checkpoint(ckpt, ckpt_path, in_channels, num_classes)
    return (model.to(device) if device is not None else model), record
