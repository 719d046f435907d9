"""The report's training-cost table (``bench.report.cost_table``): ``bench perf``'s rows, each
number as the perf JSON holds it, with its interval where measured; only the columns some row
has; written as ``training_cost.md`` and shown on the page."""

from __future__ import annotations

import json
import re

import pandas as pd

from report_support import experiments, made, perf_json, report  # noqa: F401  (fixtures)

from scaleqbench.bench.report.cost_table import cost_html, cost_markdown, cost_rows
from scaleqbench.bench.report.data import load_perf


def _table(md: str) -> list[list[str]]:
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in md.splitlines()
            if ln.startswith("|")]


def test_one_row_per_perf_row_with_the_numbers_it_holds(perf_json):  # noqa: F811
    perf = load_perf(perf_json)
    rows = json.loads(perf_json.read_text())["rows"]
    header, *body = _table(cost_markdown(perf))
    body = body[1:]  # the alignment row
    assert header == ["method", "size (px)", "batch", "train step (s)", "ms / image",
                      "infer (img/s)", "peak mem (MiB)"]  # no work counted, no contention
    assert len(body) == len(rows) == 18
    for cells, r in zip(body, rows):
        shown = dict(zip(header, cells))
        step = float(shown["train step (s)"].split(" [")[0])
        assert (shown["method"], int(shown["size (px)"])) == (r["method"], r["size"])
        assert abs(step - r["train_step_s"]) <= 5e-4
        assert float(shown["ms / image"]) == float(f"{1000 * r['train_step_s'] / r['batch']:.3g}")
        if "train_step_s_interval" in r:  # cnn's rows
            lo, hi = map(float, re.search(r"\[(.+)–(.+)\]", shown["train step (s)"]).groups())
            assert (lo, hi) == tuple(round(v, 3) for v in r["train_step_s_interval"])
        else:
            assert "[" not in shown["train step (s)"]
        if r["method"] == "sesn":
            assert shown["peak mem (MiB)"] == "—"  # no reading: a dash, not nan


def test_work_and_contention_columns_appear_where_measured():
    perf = pd.DataFrame([
        {"method": "fourier", "size": 28, "batch": 128, "train_step_s": 0.41, "gflop": 38.84,
         "gflop_per_s": 94.7, "infer_img_per_s": 880.0, "peak_mem_mb": 383.0,
         "contention_ratio": 1.95, "contention_ratio_interval": [1.76, 2.1],
         "contention_vs_baseline": 0.92, "contention_vs_baseline_interval": [0.83, 1.01],
         "device": "cpu (2 threads)"},
        {"method": "cnn", "size": 28, "batch": 128, "train_step_s": 0.12, "gflop": 26.56,
         "gflop_per_s": 221.3, "infer_img_per_s": 2800.0, "peak_mem_mb": 100.0,
         "device": "cpu (2 threads)"}])
    header, rows = cost_rows(perf)
    assert header[-4:] == ["infer (img/s)", "peak mem (MiB)", "busy / quiet", "vs baseline"]
    fourier, cnn = (dict(zip(header, r)) for r in rows)
    assert (fourier["GFLOP"], fourier["GFLOP/s"]) == ("38.84", "94.7")
    assert fourier["busy / quiet"] == "1.95× [1.76–2.10]"
    assert fourier["vs baseline"] == "0.92× [0.83–1.01]"
    assert cnn["busy / quiet"] == "—"  # measured for one row only
    page = cost_html(perf)
    assert '<td>1.95×<span class="ci">[1.76–2.10]</span></td>' in page
    assert "busy / quiet: the step&#x27;s slowdown beside a busy neighbour" in page


def test_the_report_writes_the_table_and_shows_it(report):  # noqa: F811
    out, written = report
    md = out / "training_cost.md"
    assert md in written and md.read_text().startswith("| method | size (px) |")
    page = (out / "index.html").read_text()
    assert 'href="training_cost.md"' in page
    cost = page[page.index('<h2 id="cost">'):page.index('<h2 id="experiments">')]
    assert cost.index('<table class="cost">') < cost.index("<figure")  # table, then figure
    assert cost.count("<tr>") == 1 + 18  # header and one row per perf row
