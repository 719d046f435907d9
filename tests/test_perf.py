"""``bench.perf``: one row per (method, size) with every column, a table, an atomic JSON file.

Performance itself is never asserted by timing; these tests check the plumbing.
"""

from __future__ import annotations

import json
import math

import pytest

from fourier_helpers import fourier_paths

from scaleqbench.bench.run.perf import format_perf_table, method_label, run_perf, write_perf_json
from scaleqbench.bench.run.perf_isolated import run_perf_isolated

COLUMNS = {"method", "size", "batch", "params", "train_step_s", "infer_img_per_s", "peak_mem_mb",
           "peak_mem_def", "device", "input", "gflop", "fft_gflop", "gflop_per_s",
           "train_step_s_interval", "timed_rounds", "interval_coverage"}
BUSY_COLUMNS = {"train_step_busy_s", "contention_ratio", "neighbour_threads", "contention_baseline",
                "contention_vs_baseline"}
BUSY_COLUMNS |= {f"{c}_interval" for c in BUSY_COLUMNS - {"neighbour_threads"}}


@pytest.fixture(scope="module")
def rows():
    return run_perf([("cnn", {}), ("fourier", {}), ("fourier", {"impl": "reference"})],
                    sizes=[8, 11], batch=3, repeats=1, warmup=1, config="quick",
                    progress=False)


def test_one_row_per_method_and_size_with_every_column(rows):
    assert [(r["method"], r["size"]) for r in rows] == [
        ("cnn", 8), ("cnn", 11), ("fourier", 8), ("fourier", 11),
        ("fourier[impl=reference]", 8), ("fourier[impl=reference]", 11)]
    for r in rows:
        # a model that says how it computes (fourier) names it; others do not
        assert set(r) == COLUMNS | ({"implementation"} if "fourier" in r["method"] else set())
        assert r["batch"] == 3 and r["params"] > 0
        assert r["train_step_s"] > 0 and r["infer_img_per_s"] > 0
        assert math.isnan(r["peak_mem_mb"]) or r["peak_mem_mb"] >= 0
        assert r["device"].startswith("cpu") and r["peak_mem_def"] == "RSS growth"
        assert r["gflop"] > 0 and 0 <= r["fft_gflop"] < r["gflop"]
        assert r["gflop_per_s"] == pytest.approx(r["gflop"] / r["train_step_s"])
    ring, mix = fourier_paths()
    assert rows[2]["implementation"] == f"ring nonlinearity: {ring}; spectral mixing: {mix}"
    assert rows[4]["implementation"] == ("ring nonlinearity: per-ring reference; "
                                         "spectral mixing: tensor operations")
    assert (f"fourier: ring nonlinearity: {ring}; spectral mixing: {mix}"
            in format_perf_table(rows).splitlines())
    # the fast Fourier layers are GEMMs on real spectra; the per-ring reference resizes by FFT
    assert all(r["fft_gflop"] == 0 for r in rows[:4]) and rows[4]["fft_gflop"] > 0
    # the reference implementation is the same model: same parameter count
    assert rows[2]["params"] == rows[4]["params"]


def test_table_lists_every_row(rows):
    table = format_perf_table(rows)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["method", "size", "batch"]
    assert sum(ln.startswith("fourier[impl=reference] ") for ln in lines) == 2  # + footer
    assert "1.00x" in table
    assert "GFLOP/s" in lines[0] and "busy_step_s" not in lines[0]


def test_json_is_written_atomically(rows, tmp_path):
    path = write_perf_json(rows, tmp_path / "perf" / "perf.json")
    assert json.loads(path.read_text())["rows"] == json.loads(json.dumps(rows))
    assert [p.name for p in path.parent.iterdir()] == ["perf.json"]  # no temp file left


def test_labels_and_argument_checks():
    assert method_label("fourier", {}) == "fourier"
    assert method_label("fourier", {"impl": "reference", "a": 1}) == "fourier[a=1,impl=reference]"
    with pytest.raises(ValueError):
        run_perf([("cnn", {})], [8], repeats=0, progress=False)


def test_cpu_peak_memory_sees_the_working_set():
    """A batch 64x larger needs visibly more memory per step: the measure is not stuck at 0
    by memory the warm-up left resident."""
    small, big = (run_perf([("cnn", {})], sizes=[28], batch=b, repeats=1, warmup=1,
                           config="mnist", progress=False)[0]["peak_mem_mb"] for b in (2, 128))
    if math.isnan(big):
        pytest.skip("no /proc/self/statm here")
    assert big > 20 and big > 4 * max(small, 1.0)


def test_allocators_are_measured_each_in_a_fresh_process_and_compared():
    """``bench perf --allocator system,tuned``: one process per (round, method, size, allocator);
    'system' is a plain script's process (glibc untouched), 'tuned' the CLI's."""
    rows = run_perf_isolated([("cnn", {})], [8], ["system", "tuned"], rounds=1, batch=2,
                             repeats=1, warmup=0, config="quick", progress=False)
    assert [(r["method"], r["size"], r["allocator"]) for r in rows] == [
        ("cnn", 8, "system"), ("cnn", 8, "tuned")]
    system, tuned = rows
    assert COLUMNS <= set(system) and system["rounds"] == 1
    assert system["train_step_s_rounds"] == [system["train_step_s"]]
    # one process: its interval is the one value, with no coverage to claim
    assert system["train_step_s_interval"] == [system["train_step_s"]] * 2
    assert system["interval_coverage"] == 0.0
    assert system["alloc_ratio"] == 1.0
    assert tuned["alloc_ratio"] > 0 and not system["glibc_tuned"]
    assert "allocator" in format_perf_table(rows).splitlines()[0]
    with pytest.raises(ValueError):
        run_perf_isolated([("cnn", {})], [8], ["jemalloc"], progress=False)


def test_every_median_carries_its_order_statistic_interval():
    """The step time's interval comes from its rounds, the busy columns' from per-round
    ratios (the method's over the baseline's of the same round for ``vs_baseline``)."""
    from scaleqbench.bench.stats import median_interval
    from scaleqbench.bench.run.perf_rounds import _busy_columns, _median

    quiet = [1.0, 1.1, 0.9, 1.3, 1.0, 1.2, 0.95]
    busy = [2.0, 2.3, 1.7, 2.5, 2.2, 2.3, 2.0]
    baseline = [2.1, 2.0, 2.2, 2.0, 2.4, 2.1, 2.0]
    iv = median_interval(quiet)
    assert _median(quiet, "t") == {"t": iv.median, "t_interval": [iv.lo, iv.hi]}
    cols = _busy_columns(quiet, busy, baseline, threads=2)
    ratios = [b / q for b, q in zip(busy, quiet)]
    rel = median_interval([r / b for r, b in zip(ratios, baseline)])
    assert cols["contention_ratio"] == median_interval(ratios).median
    assert cols["contention_vs_baseline"] == rel.median
    assert cols["contention_vs_baseline_interval"] == [rel.lo, rel.hi]
    assert cols["contention_baseline_interval"] == [2.0, 2.4]  # 7 values: min and max
    assert set(cols) == BUSY_COLUMNS


def test_the_table_shows_intervals_and_says_what_they_are():
    row = {"method": "m", "size": 8, "batch": 2, "params": 10, "train_step_s": 0.5,
           "train_step_s_interval": [0.45, 0.61], "timed_rounds": 9,
           "interval_coverage": 0.9609375, "gflop": 1.0, "gflop_per_s": 2.0,
           "infer_img_per_s": 4.0, "peak_mem_mb": 1.0, "device": "cpu (2 threads)",
           "train_step_busy_s": 1.0, "contention_ratio": 2.0,
           "contention_ratio_interval": [1.9, 2.1], "contention_baseline": 2.2,
           "contention_baseline_interval": [2.1, 2.3], "contention_vs_baseline": 0.9,
           "contention_vs_baseline_interval": [0.85, 1.02], "neighbour_threads": 2}
    table = format_perf_table([row]).splitlines()
    assert "vs_baseline" in table[0]
    assert "0.500 [0.450–0.610]" in table[2] and "2.00x [1.90–2.10]" in table[2]
    assert "0.90x [0.85–1.02]" in table[2]
    assert ("[lo–hi]: the interval of the median over 9 rounds between two order statistics "
            "(96.1% coverage, any distribution)") in table[4]
    assert table[-1].endswith("slowed 2.20x [2.10–2.30] beside the neighbour in the same rounds")
    # a row from before intervals (an older perf.json) shows its medians alone
    old = {k: v for k, v in row.items() if "interval" not in k}
    assert "[" not in format_perf_table([old]).splitlines()[2]
