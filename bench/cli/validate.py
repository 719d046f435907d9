"""Checks of command-line values that must pass before a command writes anything.

Each raises a :mod:`bench.errors` type with one line that says what was wrong
and what to do: seeds and counts, ``--device`` against what torch sees here,
method options against the method's configuration (unknown keys get a "did you
mean", values of the wrong kind are named, and a model that still cannot be
built says why), and output folders (a regular file where a folder is wanted, a
folder that cannot be written).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
import secrets
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from scaleqbench.bench.errors import (
    BadArgumentError,
    BenchError,
    OutputNotWritableError,
    UnknownNameError,
)

__all__ = ["check_at_least", "check_device", "check_equivariance_args", "check_method_options",
           "check_perf_args", "check_seed", "dataset_family", "did_you_mean", "runs_that_may_run",
           "writable_file", "writable_folder", "writing_into"]

#: numpy's seeds are unsigned 32-bit integers
_SEED_MAX = 2**32 - 1
_DEVICE_TYPES = ("cpu", "cuda", "mps")


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, else an empty string."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
    if not here or device.type == "cpu":
        return name
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise BadArgumentError(f"--device {name}: torch sees no MPS device on this machine; "
                                   "use --device cpu or auto")
        return name
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise BadArgumentError(f"--device {name}: torch sees no CUDA GPU on this machine; use "
                               "--device cpu or auto")
    if device.index is not None and device.index >= count:
        raise BadArgumentError(f"--device {name}: torch sees {count} CUDA GPU(s) here, "
                               f"cuda:0..cuda:{count - 1}")
    return name


def _parameters(fn: Any) -> dict[str, inspect.Parameter]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {k: p for k, p in params.items()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and k != "self"}


def _option_defaults(entry: Any, config: str, model: Any = None) -> dict[str, Any]:
    """The method's options with an example value: the builder's named parameters, those of
    the model class it built (``model``), and every configuration's values (``config``'s
    win). ``inspect.Parameter.empty`` where no example is known."""
    found: dict[str, Any] = {}
    sources = [_parameters(entry.builder)]
    if model is not None:
        sources.append(_parameters(type(model).__init__))
    for params in sources:
        for k, p in params.items():
            found.setdefault(k, p.default)
    for values in entry.configs.values():
        for k, v in values.items():
            if found.get(k) in (None, inspect.Parameter.empty):
                found[k] = v
    found.update(entry.configs.get(config, {}))
    # set by the dataset (and, for timm:<name>, by the name), never by an option
    for k in ("in_channels", "num_classes", "model_name"):
        found.pop(k, None)
    return found


def _kind(example: Any) -> tuple[type, ...] | None:
    """The types a value may have where ``example`` is the default (None: any)."""
    if isinstance(example, bool):
        return (bool,)
    if isinstance(example, int):
        return (int,)
    if isinstance(example, float):
        return (int, float)
    if isinstance(example, (tuple, list)):
        return (tuple, list)
    if isinstance(example, str):
        return (str,)
    return None


def _check_types(label: str, kwargs: dict[str, Any], examples: dict[str, Any]) -> None:
    for key, value in kwargs.items():
        example = examples.get(key, inspect.Parameter.empty)
        kinds = _kind(example)
        if kinds is None:
            continue
        wrong = not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        if wrong:
            what = {tuple: "a tuple", bool: "True or False", int: "an integer",
                    str: "a string"}.get(kinds[0], kinds[0].__name__)
            if kinds == (int, float):
                what = "a number"
            raise BadArgumentError(f"method option {key}={value!r} of {label} must be {what} "
                                   f"such as {key}={example!r}")


def check_method_options(chosen: Sequence[tuple[str, dict[str, Any]]], config: str,
                         in_channels: int = 1, num_classes: int = 10, size: int = 28) -> None:
    """Every method given with options (``NAME[k=v,...]``) takes them: each key is one of its
    options, each value of the kind its configuration uses, and the model builds with them
    and classifies two blank ``size`` x ``size`` images (once, on the CPU, in ``config``; the
    global RNG is left as it was)."""
    import torch

    from scaleqbench import methods
    from scaleqbench.bench.spec import format_method

    for name, kwargs in chosen:
        if not kwargs:
            continue
        entry = methods.get_method(name)
        label = format_method(name, kwargs)
        _check_types(label, kwargs, _option_defaults(entry, config))
        # the trial's warnings (e.g. torch on zero-size layers) would come again from the
        # real build, or not at all when the options are refused
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = methods.create(name, in_channels=in_channels,
                                       num_classes=num_classes, config=config, **kwargs)
                with torch.no_grad():
                    model.eval()(torch.zeros(2, in_channels, size, size))
            except methods.UnknownConfigError:
                raise
            except TypeError as exc:
                key = _unexpected_keyword(exc, kwargs)
                if key is None:
                    raise BadArgumentError(f"{label} cannot be built: {_first_line(exc)}") from None
                try:
                    plain = methods.create(name, in_channels=in_channels,
                                           num_classes=num_classes, config=config)
                except Exception:  # noqa: BLE001 - only for the list of options below
                    plain = None
                options = sorted(_option_defaults(entry, config, plain))
                raise UnknownNameError(
                    f"method {name!r} has no option {key!r}{did_you_mean(key, options)}"
                    + (f"; its options: {', '.join(options)}" if options else "")) from None
            except Exception as exc:  # noqa: BLE001 - any failure to build is the options'
                raise BadArgumentError(f"{label} cannot be built: {_first_line(exc)}") from None


def _unexpected_keyword(exc: TypeError, kwargs: dict[str, Any]) -> str | None:
    text = str(exc)
    if "unexpected keyword argument" not in text:
        return None
    return next((k for k in kwargs if f"'{k}'" in text), None)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def writable_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder this process can write: created when missing; a regular file or a
    folder without write permission is :class:`OutputNotWritableError`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputNotWritableError(f"{flag} {path} is a file, not a folder; pass a folder")
    probe = path / f".write-probe-{secrets.token_hex(4)}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write to {flag} {path} ({exc.strerror or exc}); "
                                     "pass a folder you can write") from None
    return path


def dataset_family(dataset: str) -> tuple[str, int]:
    """The method configuration family of a dataset (``mnist`` / ``stl10``) and its channels,
    without building it."""
    from scaleqbench.datasets import dataset_info

    stl = dataset_info(dataset).protocol.startswith("stl10")
    return ("stl10", 3) if stl else ("mnist", 1)


def _full_size(dataset: str) -> int:
    from scaleqbench.datasets import dataset_info

    return max(dataset_info(dataset).sizes)


def runs_that_may_run(specs: Sequence[Any], out_dir: Path, retry_failed: bool = True
                      ) -> list[Any]:
    """The specs without a readable ``ok`` record in ``out_dir`` (and without a failed one,
    unless ``retry_failed``), read only: what a sweep will need data for, known before it
    writes anything (:func:`bench.launchers.pending` decides under the lock)."""
    from scaleqbench.bench.errors import CorruptRecordError
    from scaleqbench.bench.store.run_store import load_record, record_path

    todo = []
    for spec in specs:
        try:
            rec = load_record(record_path(out_dir, spec.run_id))
        except CorruptRecordError:
            rec = None
        if rec is None or not (rec.ok or not retry_failed):
            todo.append(spec)
    return todo


def check_equivariance_args(args: Any) -> str:
    """``bench equivariance``'s values, before the dataset is built; returns the device."""
    from scaleqbench.bench.spec import parse_int_list, parse_methods

    check_seed(args.seed)
    check_at_least(args.images, "--images")
    device = check_device(args.device)
    if not args.checkpoint:  # fresh models: unknown methods and options
        family, channels = dataset_family(args.dataset)
        check_method_options(parse_methods(args.methods), args.config or family, channels,
                             size=_full_size(args.dataset))
        parse_int_list(args.init_seeds, "init seed", lo=0)
    return device


def check_perf_args(args: Any) -> tuple[list[int], list[tuple[str, dict[str, Any]]]]:
    """``bench perf``'s values: its sizes and methods (with options), checked."""
    from scaleqbench.bench.spec import parse_int_list, parse_methods

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
    check_device(args.device)
    chosen = parse_methods(args.methods)
    check_method_options(chosen, args.config, args.channels, size=min(sizes))
    writable_file(args.out, "--out")
    return sizes, chosen


def writable_file(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a file that can be written later: not a folder, in a folder that is one."""
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
        raise OutputNotWritableError(f"cannot write to {flag} {folder} ({exc.strerror or exc}); "
                                     "pass a folder you can write") from None
