"""Launchers: where the jobs of a sweep run. Launch configuration is data (a frozen dataclass).

``LocalLauncher`` runs each pending RunSpec in this process, one after the
other. A spec whose record already exists with status ``ok`` is skipped, so a
sweep that was interrupted resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from bench.records import load_record, record_path
from bench.spec import RunSpec
from bench.train import run_one

__all__ = ["LocalLauncher", "pending"]

log = logging.getLogger(__name__)


def pending(specs: list[RunSpec], out_dir: Path) -> list[RunSpec]:
    """The specs without an ``ok`` record in ``out_dir`` (failed ones are retried)."""
    todo = []
    for spec in specs:
        rec = load_record(record_path(out_dir, spec.run_id))
        if rec is not None and rec.get("status") == "ok":
            log.info("skip %s seed %d: record %s exists", spec.label, spec.seed, spec.run_id)
            continue
        todo.append(spec)
    return todo


@dataclass(frozen=True)
class LocalLauncher:
    """Run jobs in-process, sequentially."""

    progress: bool = True

    def launch(self, specs: list[RunSpec], out_dir: Path,
               on_record: Callable[[dict], None] | None = None) -> list[dict]:
        records = []
        for spec in tqdm(specs, desc="sweep", disable=not self.progress or len(specs) < 2):
            rec = run_one(spec, out_dir, progress=self.progress)
            records.append(rec)
            if on_record is not None:
                on_record(rec)
        return records
