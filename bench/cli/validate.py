"""Checks of command-line values that must pass before a command writes anything.

Each raises a :mod:`bench.errors` type with one line that says what was wrong
and what to do: seeds, counts and limits, ``--device`` against what torch sees
here (or, for a Slurm sweep, against the GPUs each task asks for) and against
``--precision``, each command's own values (``bench run``, ``equivariance``, ``perf``), and
output files and folders (a regular file where a folder is wanted, a folder that
cannot be written). A method's options are checked by
:mod:`bench.cli.method_options`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from scaleqbench.bench.cli.method_options import (
    check_method_options,
    check_recipe,
    check_sizes_accepted,
)
from scaleqbench.bench.cli.options import note_unused_options
from scaleqbench.bench.errors import (
    BadArgumentError,
    BenchError,
    OutputNotWritableError,
    did_you_mean,
)
# one probe of an output folder for every command (an experiment's, a report's, a board's)
from scaleqbench.bench.store.run_store import writable_folder

__all__ = ["check_at_least", "check_device", "check_equivariance_args", "check_launch_device",
           "check_options_on", "check_perf_args", "check_recipe_arg", "check_run_args",
           "check_seed", "check_sweep_limits", "dataset_family",
           "parse_operators", "writable_file", "writable_folder", "writing_into"]

#: numpy's seeds are unsigned 32-bit integers
_SEED_MAX = 2**32 - 1
_DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_seed(value: int, flag: str = "--seed") -> int:
    if not 0 <= value <= _SEED_MAX:
        raise BadArgumentError(f"{flag} must be between 0 and {_SEED_MAX}, got {value}")
    return value


def check_at_least(value: int | None, flag: str, lowest: int = 1) -> int | None:
    """``value`` when it is None or at least ``lowest``."""
    if value is not None and value < lowest:
        raise BadArgumentError(f"{flag} must be >= {lowest}, got {value}")
    return value


def check_device(name: str, here: bool = True) -> str:
    """``name`` when it is ``auto`` or a device torch can name; with ``here``, also one that
    this machine has (a Slurm sweep's device is the nodes', not the login node's)."""
    import torch

    if name == "auto":
        return name
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in _DEVICE_TYPES:
        hint = (" (did you mean 'cuda'?)" if name.lower().startswith("gpu")
                else did_you_mean(name, ("auto", *_DEVICE_TYPES, "cuda:0")))
        raise BadArgumentError(f"unknown --device {name!r}{hint}; use auto, cpu, cuda, cuda:N "
                               "or mps")
    if device.type == "mps":  # wherever the runs go
        from scaleqbench.bench.run.devices import MPS_REFUSAL

        raise BadArgumentError(f"--device {name}: {MPS_REFUSAL}")
    if not here or device.type == "cpu":
        return name
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise BadArgumentError(f"--device {name}: torch sees no CUDA GPU on this machine; use "
                               "--device cpu or auto")
    if device.index is not None and device.index >= count:
        raise BadArgumentError(f"--device {name}: torch sees {count} CUDA GPU(s) here, "
                               f"cuda:0..cuda:{count - 1}")
    return name


def check_sweep_limits(args: Any) -> None:
    """``--epochs`` (at least 1) and ``--limit-train`` / ``--limit-eval`` (at least 2: a
    split of one image has no batch statistics) of ``bench run`` and ``bench reproduce``."""
    check_at_least(args.epochs, "--epochs")
    check_at_least(args.limit_train, "--limit-train", 2)
    check_at_least(args.limit_eval, "--limit-eval", 2)


def check_run_args(args: Any) -> tuple[list[tuple[str, dict[str, Any]]], list[int]]:
    """``bench run``'s values, before anything is written (a sweep must not start only to
    record every run failed): returns its methods (with options) and seeds. The options are
    checked on every dataset of the sweep (``args.datasets``, else ``args.dataset``); on
    Slurm the device is the nodes' to check, not this machine's."""
    from scaleqbench.bench.spec import preset
    from scaleqbench.bench.spec_parsing import parse_int_list, parse_methods

    check_sweep_limits(args)
    seeds = parse_int_list(args.seeds, "seed", lo=0, hi=_SEED_MAX)
    entries = getattr(args, "method_entries", None)  # a sweep file's (name, options, recipe)
    methods = [(n, kw) for n, kw, _ in entries] if entries else parse_methods(args.methods)
    for dataset in getattr(args, "datasets", None) or [args.dataset]:
        check_options_on(methods, dataset, preset(args.preset).config)
    check_launch_device(args)
    return methods, seeds


def check_recipe_arg(args: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``--recipe KEY=VALUE,...`` parsed and checked (:func:`check_recipe`) over ``base`` (a
    sweep file's recipe): the overrides of every method's recipe. ``epochs`` is given once:
    by ``--epochs`` or in the recipe."""
    from scaleqbench.bench.spec_parsing import parse_recipe

    given = check_recipe(parse_recipe(args.recipe)) if getattr(args, "recipe", None) else {}
    recipe = {**(base or {}), **given}
    if "epochs" in recipe and args.epochs is not None:
        raise BadArgumentError(f"--epochs {args.epochs} and recipe epochs={recipe['epochs']}: "
                               "give the number of epochs once")
    return recipe


def check_launch_device(args: Any) -> None:
    """``--device`` (and ``--precision``) of a sweep against where its runs will compute:
    this machine's devices (``--launcher local``), or the GPUs each Slurm task asks for
    (``--launcher slurm``: ``--device auto`` then means CUDA exactly when the tasks get
    GPUs)."""
    launcher = getattr(args, "launcher", "local")
    check_device(args.device, here=launcher == "local")
    if launcher == "slurm":
        from scaleqbench.bench.cli.options import launcher_options
        from scaleqbench.bench.launch.slurm_config import check_slurm_device, config_of_options

        kind = check_slurm_device(args.device, config_of_options(launcher_options(args)))
    else:
        from scaleqbench.bench.run.devices import resolve_device

        kind = resolve_device(args.device).type
    precision = getattr(args, "precision", "fp32")
    if precision == "tf32" and kind == "cpu":
        raise BadArgumentError("--precision tf32 is a CUDA mode (TF32 matmuls and "
                               "convolutions); these runs compute on the CPU: use --precision "
                               "fp32 or bf16")


def check_equivariance_args(args: Any) -> str:
    """``bench equivariance``'s values, before the dataset is built; returns the device."""
    from scaleqbench.bench.spec_parsing import parse_int_list, parse_methods
    from scaleqbench.datasets import check_buildable

    check_seed(args.seed)
    check_at_least(args.images, "--images")
    parse_operators(args.operator)
    if args.each and not args.checkpoint:
        raise BadArgumentError("--each keeps one row per --checkpoint file; give --checkpoint")
    device = check_device(args.device)
    if not args.checkpoint:  # fresh models: unknown methods and options
        check_options_on(parse_methods(args.methods), args.dataset, args.config)
        parse_int_list(args.init_seeds, "init seed", lo=0)
    else:  # a checkpoint carries its method and config: options naming others would be ignored
        config_given = getattr(args, "config_given", args.config is not None)
        ignored = [flag for flag, given in (("--methods", args.methods != "all"),
                                            ("--config", config_given)) if given]
        if ignored:
            raise BadArgumentError(f"{' and '.join(ignored)} cannot be used with --checkpoint "
                                   "(each checkpoint carries its method and config); drop them")
        from scaleqbench.bench.store.checkpoint import load_best

        for group in args.checkpoint:  # each file read before the dataset is built or cached
            for path in (group if isinstance(group, list) else [group]):
                load_best(path)
    if args.sizes:
        sizes = check_target_sizes(args.sizes, args.dataset)
        if not args.checkpoint:  # a fresh model may take fewer sizes than the dataset has
            check_sizes_accepted(parse_methods(args.methods), args.config, sizes,
                                 dataset_family(args.dataset)[1])
    check_buildable(args.dataset, args.source, args.data_root)  # its files: nothing built yet
    return device


def check_target_sizes(text: str, dataset: str) -> list[int]:
    """Target sizes of an equivariance measurement: within the dataset's sizes, below its full
    size (the size of the image the error compares against)."""
    from scaleqbench.bench.spec_parsing import parse_int_list
    from scaleqbench.datasets import dataset_info

    sizes = dataset_info(dataset).sizes
    lo, hi = min(sizes), max(sizes) - 1
    return parse_int_list(text, "target size", lo=lo, hi=hi)


def parse_operators(text: str) -> list[str]:
    """``--operator``'s comma list of equivariance operators (:data:`bench.run.metrics.OPERATORS`),
    each once."""
    from scaleqbench.bench.run.metrics import OPERATORS

    ops = list(dict.fromkeys(o.strip() for o in text.split(",") if o.strip()))
    if not ops or set(ops) - set(OPERATORS):
        raise BadArgumentError(f"--operator takes a comma list of {', '.join(OPERATORS)}; "
                               f"got {text!r}")
    return ops


def check_perf_args(args: Any, allocators: Sequence[str]
                    ) -> tuple[list[int], list[tuple[str, dict[str, Any]]], list[str]]:
    """``bench perf``'s values: its sizes, methods (with options) and ``--allocator`` settings
    (each one of ``allocators``), checked."""
    from scaleqbench.bench.spec_parsing import parse_int_list, parse_methods

    sizes = parse_int_list(args.sizes, "size", lo=1)
    if args.batch < 2:  # a training step's batch statistics (BatchNorm) need two images
        raise BadArgumentError(f"--batch must be >= 2 (a training step with batch statistics "
                               f"needs two images), got {args.batch}")
    if args.repeats < 1 or args.warmup < 0:
        raise BadArgumentError("--repeats must be >= 1 and --warmup >= 0")
    check_at_least(args.channels, "--channels")
    if args.canvas is not None and args.canvas < max(sizes):
        raise BadArgumentError(f"--canvas {args.canvas} is smaller than the largest of --sizes "
                               f"({max(sizes)}); an image cannot be padded onto it")
    allocs = [a.strip() for a in (args.allocator or "").split(",") if a.strip()]
    if args.allocator is not None and (not allocs or set(allocs) - set(allocators)
                                       or args.rounds < 1):
        raise BadArgumentError(f"--allocator takes {' and/or '.join(allocators)} "
                               f"(got {args.allocator!r}) and --rounds must be >= 1")
    check_device(args.device)
    chosen = parse_methods(args.methods)
    check_method_options(chosen, args.config, args.channels, size=min(sizes))
    check_sizes_accepted(chosen, args.config, sizes, args.channels,
                         prepare=_perf_input(args.input, args.canvas, max(sizes)))
    writable_file(args.out, "--out")
    note_unused_options(args)  # checked: what was given and does nothing, one note each
    return sizes, chosen, allocs


def _perf_input(policy: str, canvas: int | None, largest: int):
    """What ``bench perf`` feeds a model of an image (its input policy onto its canvas), for
    the size check; ``published`` is checked as native (each method's own policy is one of
    native and pad, and pad sees the canvas, a size every method takes)."""
    if policy in (None, "native", "published"):
        return None
    from scaleqbench.datasets.scaling import to_canvas

    return lambda x: to_canvas(x, policy, canvas or largest)


def dataset_family(dataset: str) -> tuple[str, int]:
    """The method configuration family of a dataset (``mnist`` / ``stl10``) and its channels,
    without building it."""
    from scaleqbench.datasets import dataset_info
    from scaleqbench.datasets.splits import method_config_of

    family = method_config_of(dataset_info(dataset).protocol)
    return family, 3 if family == "stl10" else 1


def check_options_on(methods: list[tuple[str, dict[str, Any]]], dataset: str,
                      config: str | None) -> None:
    """:func:`check_method_options` for models of ``dataset`` (its channels, its full size) in
    ``config`` (None: the dataset's family)."""
    from scaleqbench.datasets import dataset_info

    family, channels = dataset_family(dataset)
    check_method_options(methods, config or family, channels,
                         size=max(dataset_info(dataset).sizes))


def writable_file(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a file that can be written later: not a folder, in a folder that is one."""
    if not str(path).strip():
        raise BadArgumentError(f"{flag} is empty; give a file name")
    path = Path(path)
    if path.is_dir():
        raise OutputNotWritableError(f"{flag} {path} is a folder; pass a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputNotWritableError(f"cannot write {flag} {path}: {parent} is a file, not a "
                                     "folder")
    return path


@contextlib.contextmanager
def writing_into(folder: Path, flag: str = "--out") -> Iterator[None]:
    """A write into ``folder`` that the system refuses part-way (permissions changed, a file
    in the way) ends with one line; a full disk keeps its own (:class:`DiskFullError`)."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, BenchError):
            raise
        raise OutputNotWritableError.refused(flag, folder, exc) from None


def check_out_path(text: str, flag: str = "--out") -> Path:
    """``--out`` as a path the file system can hold: not empty, and no part of it longer than
    the file system's name limit (checked before anything is written or computed)."""
    if not str(text).strip():
        raise BadArgumentError(f"{flag} is empty; give a folder, e.g. {flag} results/my-sweep")
    path = Path(text)
    try:
        limit = os.pathconf(".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise BadArgumentError(f"{flag}: the name {part[:40]}... is {len(os.fsencode(part))} "
                                   f"bytes, longer than the file system allows ({limit}); "
                                   "give a shorter folder name")
    return path
