"""Helpers for the injected-fault tests: ``bench`` run in this process, the records on disk
and the check that every finished one is kept byte for byte, no temporary file left, the
one line a command stops with (and, refused, that it wrote nothing), and a fake run that writes its record through the real
store.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch import job as job_module
from scaleqbench.bench.run import train as train_module
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore


TINY = ["--methods", "cnn", "--limit-train", "40", "--limit-eval", "20", "--epochs", "1",
        "--no-report", "--quiet"]


def bench(*argv: str) -> int:
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def records(out: Path) -> dict[str, bytes]:
    """Every record file of ``out`` by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted((out / "runs").glob("*.json"))}


def assert_kept(before: dict[str, bytes], out: Path) -> None:
    """Every record of ``before`` that was finished is still there, unchanged."""
    now = records(out)
    for name, data in before.items():
        if json.loads(data).get("status") == "ok":
            assert now.get(name) == data, f"RECORD LOST: {name} changed or vanished"


def no_temporaries(out: Path) -> None:
    left = [str(p) for p in out.rglob("*.tmp")] if out.exists() else []
    assert not left, f"temporary files left behind: {left}"


def one_line(err: str, *phrases: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``root`` (links not followed): (size, mtime in ns) of a file,
    ``(-1, 0)`` of anything else; equal before and after a command that wrote nothing."""
    out = {}
    for path in root.rglob("*"):
        st = path.lstat()
        out[str(path.relative_to(root))] = ((st.st_size, st.st_mtime_ns) if path.is_file()
                                            else (-1, 0))
    return out


def assert_refused(code: int | None, err: str, phrase: str, caplog, recwarn,
                   beside: str | None = None) -> None:
    """A command refused as a user error: a non-zero exit and one ``bench: error:`` line
    naming ``phrase`` (lines starting with ``beside`` may stand next to it), no traceback,
    no usage text, and no warning logged or shown (each would be more lines on stderr)."""
    lines = [ln for ln in err.splitlines() if not (beside and ln.startswith(beside))]
    assert code not in (0, None), f"exit {code}: {err}"
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), err
    assert phrase in lines[0], lines[0]
    assert "Traceback" not in err and "usage:" not in err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    shown = [w for w in recwarn if issubclass(w.category, UserWarning)]
    assert not shown, [str(w.message) for w in shown]


@pytest.fixture()
def fast(monkeypatch, cache_dir):
    """Real runs, measured on 4 images for equivariance (the rest of the run unchanged)."""
    real = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate",
                        lambda *a, **k: real(*a, **{**k, "eq_images": 4}))


@pytest.fixture()
def fake_runs(monkeypatch, cache_dir):
    """Runs that write an ``ok`` record through the real store at once; ``calls`` lists the
    specs run, ``before(spec, n)`` (settable) runs first, for faults."""
    state = {"calls": [], "before": None}

    def run_one(spec, out_dir, progress=False, context=None):
        state["calls"].append(spec)
        if state["before"] is not None:
            state["before"](spec, len(state["calls"]))
        rec = RunRecord.for_spec(spec, status="ok", test_acc=0.5, params=1, **(context or {}))
        RunStore(out_dir).write_job(rec)  # as the real job writes: its launcher's verdict holds
        return rec

    monkeypatch.setattr(job_module, "run_one", run_one)
    return state
