"""Slurm launch configuration as data: a frozen dataclass read from flags, a TOML file or pyproject.

Precedence (later wins): defaults < ``[tool.scaleqbench.slurm]`` of ``./pyproject.toml``
< ``--launcher-config FILE`` (its ``[slurm]`` table, ``[tool.scaleqbench.slurm]``, or
top-level keys) < command-line flags. A cluster's defaults are written once::

    # slurm.toml
    partition = "gpu"
    gpus_per_job = 1
    runs_per_job = 4          # four runs share each task's GPU (separate processes)
    cpus_per_job = 8
    mem = "32G"
    time = "4:00:00"
    array_parallelism = 16
    setup = ["module load cuda"]
    [sbatch_extra]
    exclude = "node13"

GPUs are asked for with ``--gpus-per-node`` (``gpus_per_job``), or with ``gres`` (e.g.
``gpu:1``, ``gpu:a100:2``) on clusters that refuse it. A task runs ``runs_per_job`` runs,
each in a process of its own on one of the task's GPUs; the job step gets the task's CPUs
(``SRUN_CPUS_PER_TASK``: since Slurm 22.05 ``srun`` does not inherit ``--cpus-per-task``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaleqbench.bench.errors import BadArgumentError

__all__ = ["FLAG_FIELDS", "SlurmConfig", "check_slurm_device", "config_of_options",
           "load_slurm_config", "parse_slurm_time"]


def parse_slurm_time(text: str | int) -> int:
    """Slurm time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in whole minutes (ceil)."""
    if isinstance(text, int):
        if text < 1:
            raise BadArgumentError(f"--time must be at least 1 minute, got {text}")
        return text
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text).strip())
    if not m:
        raise BadArgumentError(f"bad --time {text!r}; write minutes, MM:SS, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:  # MM
        seconds = a * 60
    if seconds < 1:
        raise BadArgumentError(f"--time {text!r} is zero")
    return max(1, math.ceil(seconds / 60))


@dataclass(frozen=True)
class SlurmConfig:
    """Everything ``bench run --launcher slurm`` asks of the cluster."""

    partition: str | None = field(default=None, metadata={"help": "Slurm partition"})
    # "least": the smallest value an integer option takes (sbatch would refuse a lower one
    # only after the sweep is prepared, with a traceback): a task needs a CPU and the array a
    # slot; no GPU, no requeue and no early signal are meaningful choices
    gpus_per_job: int = field(default=0, metadata={"help": "GPUs per array task", "least": 0})
    gres: str | None = field(default=None, metadata={
        "help": "generic resources per task instead of --gpus-per-job, e.g. gpu:1 or "
                "gpu:a100:2 (clusters that refuse --gpus-per-node)"})
    runs_per_job: int = field(default=1, metadata={
        "help": "runs per array task, each its own process sharing the task's GPU(s); fewer "
                "run at once when the memory estimate says they would not fit", "least": 1})
    cpus_per_job: int = field(default=1, metadata={"help": "CPUs per array task", "least": 1})
    mem: str | None = field(default=None, metadata={"help": "memory per task, e.g. 16G"})
    time: str = field(default="1:00:00", metadata={
        "help": "per-job time limit, e.g. 4:00:00 or 30 (minutes)"})
    account: str | None = field(default=None, metadata={"help": "Slurm account"})
    qos: str | None = field(default=None, metadata={"help": "Slurm quality of service"})
    constraint: str | None = field(default=None, metadata={"help": "node features required"})
    array_parallelism: int = field(default=16, metadata={
        "help": "array tasks running at once", "least": 1})
    # the job is told this long before its time limit, to checkpoint
    signal_delay_s: int = field(default=90, metadata={
        "help": "seconds before the time limit at which a job checkpoints and requeues",
        "least": 0})
    # timeouts/preemptions survived before a run is reported timed out
    max_requeues: int = field(default=10, metadata={
        "help": "time-outs and preemptions a task survives", "least": 0})
    python: str | None = field(default=None, metadata={
        "help": "Python interpreter on the nodes (default: the one running bench)"})
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load, conda activate)
    sbatch_extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def minutes(self) -> int:
        return parse_slurm_time(self.time)

    @property
    def gpus(self) -> int:
        """GPUs each task gets: ``gpus_per_job``, or the count of ``gres``'s ``gpu`` entry."""
        return self.gpus_per_job or gres_gpus(self.gres)

    def executor_parameters(self) -> dict[str, Any]:
        """Keyword arguments of ``submitit.SlurmExecutor.update_parameters``."""
        params: dict[str, Any] = {
            "time": self.minutes, "cpus_per_task": self.cpus_per_job, "ntasks_per_node": 1,
            "array_parallelism": self.array_parallelism, "signal_delay_s": self.signal_delay_s,
        }
        optional = {"partition": self.partition, "mem": self.mem, "account": self.account,
                    "qos": self.qos, "constraint": self.constraint}
        params.update({k: v for k, v in optional.items() if v})
        if self.gres:
            params["gres"] = self.gres
        elif self.gpus_per_job:
            params["gpus_per_node"] = self.gpus_per_job
        # submitit starts the job with a bare srun, which gives the step one CPU unless told
        params["setup"] = [f"export SRUN_CPUS_PER_TASK={self.cpus_per_job}", *self.setup]
        if self.sbatch_extra:
            params["additional_parameters"] = dict(self.sbatch_extra)
        return params


FIELDS = {f.name for f in dataclasses.fields(SlurmConfig)}
#: the fields that are command-line flags too (``--partition`` ...): every one of a single
#: value, those with a help text; the lists ``setup`` and ``sbatch_extra`` are set in a config
#: file (``--sbatch-extra`` has its own repeatable flag)
FLAG_FIELDS = tuple(f for f in dataclasses.fields(SlurmConfig) if "help" in f.metadata)
# the integer options and the least value of each
_INT_MINIMA = {f.name: f.metadata["least"] for f in dataclasses.fields(SlurmConfig)
               if "least" in f.metadata}
# sbatch --mem: a number with an optional unit; 0 is Slurm's "all the memory of the node"
_MEM = re.compile(r"\d+(?:[KMGT]B?)?", re.IGNORECASE)


def _coerce(values: dict[str, Any], origin: str) -> dict[str, Any]:
    unknown = set(values) - FIELDS
    if unknown:
        raise BadArgumentError(f"unknown Slurm option(s) {', '.join(sorted(unknown))} in {origin}; "
                               f"valid: {', '.join(sorted(FIELDS))}")
    out = dict(values)
    if "sbatch_extra" in out:
        extra = out["sbatch_extra"]
        if isinstance(extra, dict):
            extra = extra.items()
        out["sbatch_extra"] = tuple(sorted((str(k), str(v)) for k, v in extra))
    if "setup" in out:
        setup = out["setup"]
        out["setup"] = (setup,) if isinstance(setup, str) else tuple(setup)
    if "time" in out:
        out["time"] = str(out["time"])
        parse_slurm_time(out["time"])
    for key, lowest in _INT_MINIMA.items():
        if key in out:
            try:
                out[key] = int(out[key])
            except (TypeError, ValueError):
                raise BadArgumentError(f"Slurm option {key} must be an integer in {origin}, "
                                       f"got {out[key]!r}") from None
            if out[key] < lowest:
                raise BadArgumentError(f"Slurm option {key} (--{key.replace('_', '-')}) must "
                                       f"be >= {lowest} in {origin}, got {out[key]}")
    if out.get("mem") is not None:
        out["mem"] = str(out["mem"]).strip()
        if not _MEM.fullmatch(out["mem"]):
            raise BadArgumentError(f"Slurm option mem (--mem) must be a size such as 32G or "
                                   f"8000M in {origin}, got {out['mem']!r}")
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        # utf-8-sig: a byte-order mark that some editors write is dropped (tomllib refuses it)
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise BadArgumentError(f"launcher config {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadArgumentError(f"cannot read launcher config {path}: {exc}") from None
    if "tool" in data:
        return data.get("tool", {}).get("scaleqbench", {}).get("slurm", {})
    return data.get("slurm", data)


def parse_sbatch_extra(items: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        if "=" not in item:
            raise BadArgumentError(f"--sbatch-extra {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        out.append((k.strip().lstrip("-").replace("-", "_"), v.strip()))
    return tuple(out)


def load_slurm_config(config_file: str | Path | None = None,
                      overrides: dict[str, Any] | None = None,
                      project_file: str | Path = "pyproject.toml") -> SlurmConfig:
    """The effective Slurm configuration (see the module docstring for precedence)."""
    values: dict[str, Any] = {}
    project = Path(project_file)
    if project.is_file():
        values.update(_coerce(_read_toml(project) if _has_table(project) else {}, str(project)))
    if config_file is not None:
        values.update(_coerce(_read_toml(Path(config_file)), str(config_file)))
    extra = dict(values.get("sbatch_extra", ()))
    for k, v in (overrides or {}).items():
        if v is None or v == () or v == []:
            continue
        if k == "sbatch_extra":
            extra.update(dict(v))
            continue
        values.update(_coerce({k: v}, "the command line"))
    if extra:
        values["sbatch_extra"] = tuple(sorted(extra.items()))
    config = SlurmConfig(**values)
    _check_signal_margin(config)
    return config


# Slurm checks time limits on a coarse clock and may send --signal up to 60 s early; a job
# must also have started Python (and submitit's handler) before the signal comes, or it dies.
SIGNAL_SLACK_S = 60 + 20


def _check_signal_margin(config: SlurmConfig) -> None:
    limit_s = 60 * config.minutes
    if limit_s - config.signal_delay_s < SIGNAL_SLACK_S:
        raise BadArgumentError(
            f"--time {config.time} leaves {limit_s - config.signal_delay_s} s before the "
            f"checkpoint signal ({config.signal_delay_s} s early); Slurm may send it up to 60 s "
            f"earlier still, killing a job that is starting: give --time at least "
            f"{config.signal_delay_s + SIGNAL_SLACK_S} s or lower --signal-delay-s")


def gres_gpus(gres: str | None) -> int:
    """The GPUs a ``--gres`` asks for: ``gpu`` 1, ``gpu:2`` or ``gpu:a100:2`` 2, none 0."""
    for entry in (gres or "").split(","):
        parts = entry.strip().split(":")
        if parts[0] == "gpu":
            return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return 0


def config_of_options(options: dict[str, Any]) -> SlurmConfig:
    """The configuration ``bench run``'s launcher options give (flags over files)."""
    overrides = {k: v for k, v in options.items() if k in FIELDS}
    overrides["sbatch_extra"] = parse_sbatch_extra(options.get("sbatch_extra") or [])
    return load_slurm_config(options.get("launcher_config"), overrides)


def check_slurm_device(device: str, config: SlurmConfig) -> str:
    """The device kind (``cpu``/``cuda``) the runs of a Slurm sweep compute on; one line
    (:class:`BadArgumentError`) when ``device`` and the GPUs a task asks for disagree.

    ``auto`` means CUDA exactly when a task gets GPUs: a node that does not hide the GPUs
    of other jobs would otherwise hand a GPU-less task somebody else's GPU 0.
    """
    kind, _, index = device.partition(":")
    gpus = config.gpus
    if config.gpus_per_job and config.gres and gres_gpus(config.gres) not in (0, gpus):
        raise BadArgumentError(f"--gpus-per-job {config.gpus_per_job} and --gres "
                               f"{config.gres} ask for different GPUs; give one of them")
    if kind == "cuda" and not gpus:
        raise BadArgumentError(f"--device {device} needs a GPU, but each Slurm task asks for "
                               "none; add --gpus-per-job 1 (or --gres gpu:1), or use --device "
                               "cpu")
    if kind == "cuda" and index not in ("", "0"):
        raise BadArgumentError(f"--device {device}: each run of a Slurm task sees its GPU as "
                               "cuda:0; use --device cuda")
    if kind == "cpu" and gpus:
        raise BadArgumentError(f"--device cpu with {gpus} GPU(s) per task would leave them "
                               "idle; drop --gpus-per-job/--gres, or use --device cuda")
    if gpus > config.runs_per_job:
        raise BadArgumentError(f"{gpus} GPUs per task but {config.runs_per_job} run(s) per "
                               "task, one GPU each: raise --runs-per-job to at least "
                               f"{gpus}, or ask for fewer GPUs")
    return "cuda" if gpus else "cpu"


def _has_table(pyproject: Path) -> bool:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8-sig"))  # as _read_toml
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return "slurm" in data.get("tool", {}).get("scaleqbench", {})
