"""Published numbers (``published.csv``) and the one rule for when ours may stand beside them.

A published figure was measured under its paper's full protocol: the full dataset
(our ``torchvision`` source), the published widths and training recipe (our
``paper`` preset, the recipe's own epochs), the whole test split, and each method
fed its inputs as its paper fed it (``published`` input handling). Its row in
``published.csv`` also says how many training images it had (``train_images``,
empty for the protocol's full training split: the Fourier paper's data-efficiency
column has 5,000). :func:`published_protocol` writes that down as a
:class:`~bench.spec.Protocol`, and :func:`compares_to_published` holds a run's
protocol (its leaderboard key) against it: a quick-preset run, a run on the 5,000
embedded digits or with fewer epochs never stands beside a published number.

The number of images the equivariance error is averaged over (``eq_images``) is
a sample size of our measurement, not part of what a paper measured, so it is the
one protocol field the comparison leaves out.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import io
import logging
import math
from pathlib import Path

import pandas as pd

from scaleqbench.bench.errors import BenchError
from scaleqbench.bench.spec import PUBLISHED_INPUT, Protocol, resolve_input

__all__ = ["COLUMNS", "PUBLISHED_CSV", "REQUIRED", "compares_to_published", "load_published",
           "published_csv_text", "published_input", "published_protocol", "train_images"]

log = logging.getLogger(__name__)

PUBLISHED_CSV = "scaleqbench.bench.published/published.csv"  # package data, not a source-tree path
#: the columns every published-numbers file must have
REQUIRED = ["dataset", "method", "paper_method", "paper_dataset", "metric", "value", "source"]
#: the columns a file may add (empty when absent: no std, full training split, place unknown)
OPTIONAL = ["std", "train_images", "table", "page", "verified_from"]
COLUMNS = [*REQUIRED, *OPTIONAL]
#: what the full protocol of a published figure is, beyond its dataset, method and train size
FULL_SOURCE = "torchvision"
FULL_PRESET = "paper"


def published_csv_text() -> str:
    """The shipped published numbers, whether installed editable, as a wheel or zipped."""
    return importlib.resources.files("scaleqbench.bench.published").joinpath(
        "published.csv").read_text(encoding="utf-8")


def load_published(path: Path | None = None) -> pd.DataFrame:
    """The published reference numbers (``#`` lines are comments); empty when ``path`` is
    given and absent. ``value`` and ``std`` are floats (``std`` NaN where none was printed),
    ``train_images`` an integer or None (the full training split)."""
    if path is None:
        where, text = PUBLISHED_CSV, published_csv_text()
    else:
        where = path = Path(path)
        if not path.is_file():
            log.info("no published reference numbers at %s", path)
            return pd.DataFrame(columns=COLUMNS)
        text = path.read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    df = pd.DataFrame(list(csv.DictReader(io.StringIO("\n".join(lines)))))
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(missing)}; expected {REQUIRED}")
    for c in OPTIONAL:
        if c not in df.columns:
            df[c] = ""
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["std"] = pd.to_numeric(df["std"], errors="coerce")
    df["train_images"] = pd.Series([int(v) if str(v).strip() else None for v in df["train_images"]],
                                   index=df.index, dtype=object)
    return df[COLUMNS].dropna(subset=["value"]).reset_index(drop=True)


def train_images(value: object) -> int | None:
    """A ``train_images`` cell as an int, or None (the full training split)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def published_input(method: str, dataset: str) -> str | None:
    """The input policy ``method``'s paper used on ``dataset``; None when this installation
    cannot say (a dataset it does not know). A method that is not installed here (a
    plugin's records) gets the registry's default for a method that declares none: padded."""
    from scaleqbench.methods import UnknownMethodError

    try:
        try:
            return resolve_input(PUBLISHED_INPUT, method, dataset)
        except UnknownMethodError:
            return resolve_input("pad", method, dataset)  # native on a fixed canvas
    except (KeyError, ValueError, BenchError):
        return None


def published_protocol(dataset: str, method: str, n_train: int | None = None
                       ) -> Protocol | None:
    """The protocol a published figure of ``method`` on ``dataset`` with ``n_train`` training
    images was measured under; None when the method's published input is unknown here."""
    policy = published_input(method, dataset)
    if policy is None:
        return None
    return Protocol(dataset=dataset, source=FULL_SOURCE, preset=FULL_PRESET, input=policy,
                    epochs=None, limit_train=n_train, limit_eval=None)


def compares_to_published(protocol: Protocol, method: str, n_train: int | None = None) -> bool:
    """Whether a run of ``method`` (its registry name) under ``protocol`` was made the way the
    published figure with ``n_train`` training images was, so that the two may stand side by
    side (every protocol field equal but ``eq_images``, see the module docstring)."""
    ref = published_protocol(protocol.dataset, method, n_train)
    if ref is None:
        return False
    return dataclasses.replace(protocol, eq_images=ref.eq_images) == ref
