"""Checks of a method's options (``NAME[k=v,...]``) and of recipe overrides (``--recipe
k=v,...``) before a command writes anything.

Each option key must be one of the method's options (an unknown key gets a "did you mean"
and the list of its options), each value of the kind its configuration uses (named when
it is not), and the model must build with them and classify a blank image: a model that
still cannot be built says why, in one line. Each recipe key must be a field of the
training recipe (:class:`bench.run.recipes.TrainRecipe`), each value of that field's kind
and range (:func:`check_recipe`).
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from scaleqbench.bench.errors import BadArgumentError, UnknownNameError, did_you_mean

__all__ = ["RECIPE_CHOICES", "check_method_options", "check_recipe"]


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
    """Every method given with options (``NAME[k=v,...]``), and every plugin method, builds:
    each key is one of its options, each value of the kind its configuration uses, and the
    model classifies two blank ``size`` x ``size`` images into ``num_classes`` logits (once, on
    the CPU, in ``config``; the global RNG is left as it was)."""
    import torch

    from scaleqbench import methods
    from scaleqbench.bench.spec_parsing import format_method

    for name, kwargs in chosen:
        entry = methods.get_method(name)
        if not kwargs and entry.source in ("builtin", "timm"):
            continue  # built-in models are tested to build; a plugin's is tried like options
        label = format_method(name, kwargs)
        _check_types(label, kwargs, _option_defaults(entry, config))
        build = dict(in_channels=in_channels, num_classes=num_classes, config=config)
        try:
            with _trial(), torch.no_grad():
                logits = methods.create(name, **build, **kwargs).eval()(
                    torch.zeros(2, in_channels, size, size))
        except methods.UnknownConfigError:
            raise
        except TypeError as exc:
            key = _unexpected_keyword(exc, kwargs)
            if key is None:
                raise BadArgumentError(f"{label} cannot be built: {_first_line(exc)}") from None
            raise _no_such_option(name, key, entry, build) from None
        except Exception as exc:  # noqa: BLE001 - any failure to build is the options'
            raise BadArgumentError(f"{label} cannot be built: {_first_line(exc)}") from None
        _check_logits(label, logits, num_classes)


def _check_logits(label: str, logits: Any, num_classes: int) -> None:
    """A model's output on two images is a (2, num_classes) tensor of logits."""
    shape = tuple(getattr(logits, "shape", ()))
    if shape != (2, num_classes):
        raise BadArgumentError(f"{label} returns {shape or type(logits).__name__} for 2 images "
                               f"of a {num_classes}-class dataset; a model returns logits of "
                               f"shape (batch, {num_classes})")


def check_sizes_accepted(chosen: Sequence[tuple[str, dict[str, Any]]], config: str,
                         sizes: Sequence[int], in_channels: int = 1, num_classes: int = 10,
                         prepare: Any = None) -> None:
    """Every method classifies a blank image at every size it will be measured at (``prepare``
    maps an image to what the model sees, e.g. padding onto a canvas), before any measuring
    starts; a size a model refuses is one line naming the method and the size."""
    import torch

    from scaleqbench import methods
    from scaleqbench.bench.spec_parsing import format_method

    for name, kwargs in chosen:
        label = format_method(name, kwargs)
        with _trial(), torch.no_grad():
            model = methods.create(name, in_channels=in_channels, num_classes=num_classes,
                                   config=config, **kwargs).eval()
            for size in sizes:
                x = torch.zeros(2, in_channels, size, size)
                try:
                    logits = model(prepare(x) if prepare is not None else x)
                except Exception as exc:  # noqa: BLE001 - the model's own refusal, said once
                    raise BadArgumentError(f"{label} does not take {size} px inputs "
                                           f"({_first_line(exc)}); choose sizes it accepts"
                                           ) from None
                _check_logits(label, logits, num_classes)


@contextlib.contextmanager
def _trial() -> Iterator[None]:
    """Around a trial build: the global RNG is left as it was, and the build's warnings (e.g.
    torch's on zero-size layers) are dropped: the real build says them again, or never runs
    when the options are refused."""
    import torch

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _no_such_option(name: str, key: str, entry: Any, build: dict[str, Any]) -> UnknownNameError:
    """The error for an option ``key`` that method ``name`` does not take, with its options
    (those of its builder, its configurations and the model class it builds)."""
    from scaleqbench import methods

    try:
        with _trial():
            plain = methods.create(name, **build)
    except Exception:  # noqa: BLE001 - only for the list of options below
        plain = None
    options = sorted(_option_defaults(entry, build["config"], plain))
    return UnknownNameError(f"method {name!r} has no option {key!r}{did_you_mean(key, options)}"
                            + (f"; its options: {', '.join(options)}" if options else ""))


def _unexpected_keyword(exc: TypeError, kwargs: dict[str, Any]) -> str | None:
    text = str(exc)
    if "unexpected keyword argument" not in text:
        return None
    return next((k for k in kwargs if f"'{k}'" in text), None)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


#: the values of the recipe's text fields (those :func:`bench.run.optimizer.build_optimizer` builds)
RECIPE_CHOICES = {"optimizer": ("adam", "adamw", "sgd"),
                  "schedule": ("multistep", "step", "constant")}
#: the least value of the recipe's number fields (inclusive), and those that must exceed it
_LEAST = {"lr": 0, "weight_decay": 0, "momentum": 0, "gamma": 0, "epochs": 1, "batch_size": 2,
          "step_size": 1}
_ABOVE = {"lr", "gamma"}
_KINDS = {"float": "a number", "int": "an integer", "bool": "True or False", "str": "text",
          "tuple[int, ...]": "a tuple of integers", "tuple[str, ...]": "a tuple of text"}


def _recipe_value(key: str, kind: str, value: Any) -> Any:
    """``value`` of recipe field ``key`` (of ``kind``) as the recipe holds it, or None when
    it is not of that kind."""
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str):
        return value
    item = {"tuple[int, ...]": int, "tuple[str, ...]": str}.get(kind)
    if item is not None and isinstance(value, (int, str)) and not isinstance(value, bool):
        value = (value,)  # milestones=30: one milestone
    if item is not None and isinstance(value, (tuple, list)) and all(
            isinstance(v, item) and not isinstance(v, bool) for v in value):
        return tuple(value)
    return None


def check_recipe(overrides: dict[str, Any], flag: str = "--recipe") -> dict[str, Any]:
    """``overrides`` (field -> value) checked against the training recipe: every key one of
    its fields ("did you mean"), every value of the field's kind and within its range (one
    line naming ``flag``, the key and the kind expected). Returns them as the recipe holds
    them (a whole number for a float field as a float, one milestone as a tuple)."""
    from scaleqbench.bench.run.resolve import RECIPE_FIELDS

    out = {}
    for key, value in overrides.items():
        if key not in RECIPE_FIELDS:
            raise UnknownNameError(f"{flag}: the training recipe has no field {key!r}"
                                   f"{did_you_mean(key, RECIPE_FIELDS)}; its fields: "
                                   f"{', '.join(RECIPE_FIELDS)}")
        kind = RECIPE_FIELDS[key]
        checked = _recipe_value(key, kind, value)
        choices = RECIPE_CHOICES.get(key)
        if checked is None or (choices and checked not in choices):
            expected = (f"one of {', '.join(choices)}{did_you_mean(value, choices)}"
                        if choices and checked is not None else _KINDS.get(kind, kind))
            raise BadArgumentError(f"{flag} {key}={value!r}: {key} must be {expected}")
        numbers = checked if isinstance(checked, tuple) else (checked,)
        least = _LEAST.get(key, 1 if key == "milestones" else None)
        if least is not None and any(isinstance(v, (int, float)) and (
                v < least or (key in _ABOVE and v <= least)) for v in numbers):
            bound = f"> {least}" if key in _ABOVE else f">= {least}"
            raise BadArgumentError(f"{flag} {key}={value!r}: {key} must be {bound}")
        out[key] = checked
    return out
