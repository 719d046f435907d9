"""Launchers: where the jobs of a sweep run. Launch configuration is data (a frozen dataclass).

``LocalLauncher`` runs each pending RunSpec in this process, one after the
other, through the same :class:`~bench.job.SweepJob` that a Slurm array task
runs (``bench.slurm.SlurmLauncher``). A spec whose record already exists with
status ``ok`` is skipped, so a sweep that was interrupted resumes where it
stopped; failed runs are retried unless ``retry_failed`` is off. A damaged
record is moved aside (never deleted) and its run recomputed, said in a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from scalebench.bench.job import SweepJob
from scalebench.bench.record import RunRecord
from scalebench.bench.records import load_record, record_path, resume_record
from scalebench.bench.spec import RunSpec

__all__ = ["LocalLauncher", "pending"]

log = logging.getLogger(__name__)


def pending(specs: list[RunSpec], out_dir: Path, retry_failed: bool = True) -> list[RunSpec]:
    """The specs without an ``ok`` record in ``out_dir`` (and without a failed one, unless
    ``retry_failed``)."""
    todo = []
    for spec in specs:
        rec = resume_record(out_dir, spec.run_id)
        if rec is not None and (rec.ok or not retry_failed):
            log.info("skip %s seed %d: %s record %s exists", spec.label, spec.seed,
                     rec.status, spec.run_id)
            continue
        todo.append(spec)
    return todo


@dataclass(frozen=True)
class LocalLauncher:
    """Run jobs in-process, sequentially."""

    progress: bool = True

    def launch(self, specs: list[RunSpec], out_dir: Path, command: str | None = None
               ) -> list[RunRecord | None]:
        records = []
        for spec in tqdm(specs, desc="sweep", disable=not self.progress or len(specs) < 2):
            SweepJob(spec.to_dict(), str(out_dir), command)(progress=self.progress)
            records.append(load_record(record_path(out_dir, spec.run_id)))
        return records
