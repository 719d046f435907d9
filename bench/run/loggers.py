"""Per-epoch logs of a run: a CSV beside its record always, TensorBoard and Weights & Biases
on request (``bench run --log tensorboard,wandb``).

Each epoch of training produces one row (:data:`EPOCH_COLUMNS`, and ``val_acc@<size>``
per validation size where the protocol has several): the row the run's record keeps in
its ``history``. :class:`EpochLogs` hands it to every logger of the run:

* :class:`CsvLogger` -- ``<out>/runs/<run-id>.epochs.csv``, written whole (and
  atomically) after each epoch from the run's history, so a resumed run's file holds
  the epochs it resumed from and never an epoch twice;
* :class:`TensorBoardLogger` -- event files in ``<out>/tensorboard/<run-id>/``
  (``tensorboard --logdir <out>/tensorboard`` shows every run of the experiment);
  needs the ``tensorboard`` package (``pip install scaleqbench[tensorboard]``);
* :class:`WandbLogger` -- a Weights & Biases run under ``<out>/wandb/``, project
  ``$WANDB_PROJECT`` or ``scaleqbench``; needs ``wandb`` (``scaleqbench[wandb]``).
  ``WANDB_MODE=offline`` writes the run locally with no network and no account
  (``wandb sync`` uploads it later).

Logging never fails a run: a logger that cannot start or that raises is reported in
one warning and left out for the rest of the run, and training goes on.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from scaleqbench.bench.errors import did_you_mean
from scaleqbench.bench.store.atomic_io import atomic_write_text

__all__ = ["EPOCH_COLUMNS", "LOGGERS", "LOGGER_PACKAGES", "CsvLogger", "EpochLogger",
           "EpochLogs", "TensorBoardLogger", "WandbLogger", "epoch_csv_path",
           "missing_logger_packages", "parse_logger_names", "per_size_key", "per_size_row",
           "run_logs", "tensorboard_dir", "with_log"]

log = logging.getLogger(__name__)

#: the columns of every epoch row, in the CSV's order (per-size columns follow)
EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_acc", "lr", "time_s")
#: the optional loggers and the package (and pip extra) each needs
LOGGER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def per_size_key(group: str) -> str:
    """The row key of the validation accuracy at one size (or scale bin): ``val_acc@8``."""
    return f"val_acc@{group}"


def epoch_csv_path(out_dir: str | Path, run_id: str) -> Path:
    """Where a run's per-epoch CSV lives: beside its record, ``<out>/runs/<run-id>.epochs.csv``."""
    return Path(out_dir) / "runs" / f"{run_id}.epochs.csv"


def tensorboard_dir(out_dir: str | Path, run_id: str) -> Path:
    return Path(out_dir) / "tensorboard" / run_id


def missing_logger_packages(names: Iterable[str]) -> dict[str, str]:
    """``{logger: package}`` for each of ``names`` whose package is not installed."""
    return {n: LOGGER_PACKAGES[n] for n in names
            if n in LOGGER_PACKAGES and importlib.util.find_spec(LOGGER_PACKAGES[n]) is None}


def parse_logger_names(text: str) -> tuple[str, ...]:
    """``--log``'s comma list of loggers, each once; ValueError for an unknown name (with a
    "did you mean") or a logger whose package is not installed (naming the pip extra)."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        if name not in LOGGER_PACKAGES:
            raise ValueError(f"unknown logger {name!r}{did_you_mean(name, LOGGER_PACKAGES)}; "
                             f"choose from {', '.join(LOGGER_PACKAGES)} (the epoch CSV is "
                             "always written)")
    for name, package in missing_logger_packages(names).items():
        raise ValueError(f"--log {name} needs the {package} package: "
                         f"pip install 'scaleqbench[{package}]'")
    return names


class EpochLogger(Protocol):
    """Where a run's epoch rows go. ``start`` receives the epochs already done (a resumed
    run's history, else empty), ``log_epoch`` each new row, ``close`` ends the log."""

    def start(self, history: Sequence[Mapping[str, Any]]) -> None: ...

    def log_epoch(self, row: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """:data:`EPOCH_COLUMNS`, then every other key of ``rows`` in the order first seen."""
    extra = dict.fromkeys(k for row in rows for k in row if k not in EPOCH_COLUMNS)
    return [*EPOCH_COLUMNS, *extra]


class CsvLogger:
    """The run's history as a CSV file, one row per epoch; rewritten whole after each epoch
    (a few kB) so that a resumed or retried run leaves exactly its own epochs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []

    def start(self, history: Sequence[Mapping[str, Any]]) -> None:
        self.rows = [dict(row) for row in history]
        self._write()  # also replaces the file of an earlier attempt that started over

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.rows.append(dict(row))
        self._write()

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=_columns(self.rows), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, buf.getvalue())

    def close(self) -> None:
        pass


def _tag(key: str) -> str:
    """The TensorBoard tag of a row key: ``train/loss``, ``val/acc``, ``val/acc@8``..."""
    head, sep, size = key.partition("@")
    tags = {"train_loss": "train/loss", "train_acc": "train/acc", "val_acc": "val/acc",
            "lr": "train/lr", "time_s": "train/time_s"}
    return (tags.get(head, head) + sep + size) if sep else tags.get(key, key)


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a row, epoch aside, by tag."""
    return {_tag(k): float(v) for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


class TensorBoardLogger:
    """Scalars per epoch (step = epoch) through torch's ``SummaryWriter``."""

    def __init__(self, log_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.log_dir = Path(log_dir)
        self._writer_class = SummaryWriter
        self.writer = None

    def start(self, history: Sequence[Mapping[str, Any]]) -> None:
        # events of an earlier attempt past the epoch this one starts from are dropped
        first = int(history[-1]["epoch"]) + 1 if history else 1
        self.writer = self._writer_class(log_dir=str(self.log_dir), purge_step=first)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for tag, value in _scalars(row).items():
            self.writer.add_scalar(tag, value, int(row["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WandbLogger:
    """A Weights & Biases run per training run (step = epoch), its config the run's spec."""

    def __init__(self, out_dir: str | Path, name: str, config: Mapping[str, Any]):
        import wandb

        self._wandb = wandb
        self.out_dir, self.name, self.config = Path(out_dir), name, dict(config)
        self.run = None

    def start(self, history: Sequence[Mapping[str, Any]]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.run = self._wandb.init(
            project=os.environ.get("WANDB_PROJECT", "scaleqbench"), dir=str(self.out_dir),
            name=self.name, config=self.config,
            # the command's own output stays as it is
            settings=self._wandb.Settings(console="off", silent=True))
        for row in history:  # a resumed run's earlier epochs, so the run is whole
            self.log_epoch(row)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.run.log(_scalars(row), step=int(row["epoch"]))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()


#: logger name -> its factory, from (out_dir, run_id, name for display, run config)
LOGGERS: dict[str, Callable[[Path, str, str, Mapping[str, Any]], EpochLogger]] = {
    "tensorboard": lambda out, run_id, name, config: TensorBoardLogger(
        tensorboard_dir(out, run_id)),
    "wandb": lambda out, run_id, name, config: WandbLogger(out, name, config),
}


class EpochLogs:
    """Every logger of one run behind one call each; a logger that raises is named in one
    warning and dropped, the run goes on.

    ``out_dir`` None (a run without an experiment folder): nothing is logged, every log
    lives in the experiment folder.
    """

    def __init__(self, out_dir: str | Path | None, run_id: str, names: Iterable[str] = (),
                 display: str = "", config: Mapping[str, Any] | None = None):
        self.run_id = run_id
        self.loggers: dict[str, EpochLogger] = {}
        if out_dir is None:
            return
        self.loggers["csv"] = CsvLogger(epoch_csv_path(out_dir, run_id))
        for name in dict.fromkeys(names):
            self._guard(name, lambda: self.loggers.__setitem__(
                name, LOGGERS[name](Path(out_dir), run_id, display or run_id, config or {})))

    def _guard(self, name: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - logging never fails a run
            self.loggers.pop(name, None)
            extra = LOGGER_PACKAGES.get(name)
            hint = (f" (pip install 'scaleqbench[{extra}]')"
                    if isinstance(exc, ImportError) and extra else "")
            if name == "wandb" and not hint and "WANDB_MODE" not in os.environ:
                hint = " (WANDB_MODE=offline logs with no account and no network)"
            log.warning("run %s: the %s log stopped, the run goes on: %s: %s%s", self.run_id,
                        name, type(exc).__name__, exc, hint)

    def _each(self, method: str, *args: Any) -> None:
        for name, logger in list(self.loggers.items()):
            self._guard(name, lambda: getattr(logger, method)(*args))

    def start(self, history: Sequence[Mapping[str, Any]]) -> None:
        self._each("start", history)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self._each("log_epoch", row)

    def close(self) -> None:
        self._each("close")
        self.loggers.clear()

    def __enter__(self) -> EpochLogs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def per_size_row(preds: Any, labels: Any, groups: Sequence[str]) -> dict[str, float]:
    """The per-size validation accuracies of an epoch row, ``{"val_acc@8": ..., ...}``: one per
    size (or scale bin) of ``groups``, none when the split has a single one."""
    from scaleqbench.bench.run.metrics import grouped_accuracy

    if len(set(groups)) < 2:
        return {}
    return {per_size_key(g): acc for g, acc in grouped_accuracy(preds, labels, groups).items()}


def run_logs(spec: Any, out_dir: str | Path | None) -> EpochLogs:
    """The :class:`EpochLogs` of a run of ``spec`` (a :class:`~bench.spec.RunSpec`): its CSV
    and the loggers its ``log`` names."""
    return EpochLogs(out_dir, spec.run_id, spec.log,
                     display=f"{spec.label} s{spec.seed}",
                     config={"run_id": spec.run_id, **spec.to_json()})


def with_log(specs: Iterable[Any], names: Sequence[str]) -> list[Any]:
    """``specs`` (RunSpecs) that stream their epochs to the loggers ``names`` too; ``log`` is
    a place field, so every run id stays as it was."""
    from scaleqbench.bench.spec import RunSpec

    names = tuple(names)
    return [s if s.log == names else RunSpec.from_json({**s.to_json(), "log": list(names)})
            for s in specs]
