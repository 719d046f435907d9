"""``bench perf --contention``: the busy neighbour starts, computes when told, stops; rows carry
the slowdown. Behaviour only: no timing is asserted."""

from __future__ import annotations

import os

import pytest

from scaleqbench.bench.run.contention import BusyNeighbour, baseline_loop
from scaleqbench.bench.run.perf import format_perf_table, run_perf
from test_perf import BUSY_COLUMNS, COLUMNS


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_neighbour_computes_inside_busy_and_is_gone_after_close():
    with BusyNeighbour(1, size=64) as nb:
        assert nb.is_alive() and nb.threads == 1
        with nb.busy():  # returns once the child said it is computing
            assert nb.is_alive()
        with nb.busy():  # it can be made busy again
            pass
        pid = nb.pid
    assert not nb.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc here")
def test_the_neighbour_spends_cpu_time_while_busy():
    """Inside ``busy`` its CPU time grows (read from /proc: the loop ends once it has)."""
    with BusyNeighbour(1, size=64) as nb:
        with nb.busy():
            start = _cpu_seconds(nb.pid)
            while _cpu_seconds(nb.pid) == start:
                pass
        assert _cpu_seconds(nb.pid) > start


def test_contention_rows_carry_the_slowdown_and_the_table_shows_it():
    rows = run_perf([("cnn", {}), ("fourier", {})], sizes=[8], batch=2, repeats=1, warmup=0,
                    config="quick", progress=False, contention=True)
    assert [r["method"] for r in rows] == ["cnn", "fourier"]
    for r in rows:
        described = {"implementation"} if r["method"] == "fourier" else set()
        assert set(r) == COLUMNS | BUSY_COLUMNS | described
        assert r["train_step_busy_s"] > 0 and r["contention_ratio"] > 0
        assert r["neighbour_threads"] >= 1
        # one baseline per run, measured in the same rounds
        assert r["contention_baseline"] == rows[0]["contention_baseline"] > 0
    table = format_perf_table(rows).splitlines()
    assert "busy_step_s" in table[0] and "vs_quiet" in table[0]
    assert table[-1].startswith("baseline: a plain compute-bound loop (matrix products) on the "
                                f"same threads slowed {rows[0]['contention_baseline']:.2f}x")


def test_the_baseline_loop_is_matrix_products_on_this_process_sized_from_a_sample(monkeypatch):
    """It samples 32 products to size itself, then runs at least as many per call: the
    neighbour's kind of work, in this process (no timing is asserted)."""
    import torch

    calls, real = [], torch.mm
    monkeypatch.setattr(torch, "mm", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    loop = baseline_loop(target_s=0.01, size=32)
    sampled = len(calls)
    loop()
    assert sampled == 8 + 32 and len(calls) - sampled >= 32
    assert set(calls) == {torch.Size([32, 32])}
