"""The report figures (``bench.report.plots``) from synthetic records: content, fixed colours
and markers per method, Pareto fronts, learning curves, small multiples, seed bands,
per-operator equivariance and the critical-difference summary.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.report import build_report, plots
from scaleqbench.bench.report.data import eq_frame, eq_ops_frame, per_size_frame
from scaleqbench.bench.spec import RunSpec

# board, data, experiments, made, perf_json: fixtures, found by pytest under these names
from report_support import board, data, experiments, made, make_record, perf_json


def _lines(ax) -> list[str]:
    return [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def test_plots_have_content(data, board):
    palette = plots.Palette(list(data.runs.method))
    res = per_size_frame(data.records)
    res = res[res.dataset == "mnist-res"]
    fig = plots.acc_vs_size(res, palette, "mnist-res")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "test image size (px)" and ax.get_ylabel() == "test accuracy (%)"
    assert sorted(_lines(ax)) == sorted(res.method.unique())  # one line per method with data
    assert "disco" not in _lines(ax)  # it recorded no per-size accuracy
    scale = per_size_frame(data.records)
    fig = plots.acc_vs_size(scale[scale.dataset == "mnist-scale"], palette, "mnist-scale")
    assert fig.axes[0].get_xlabel() == "object scale (bin centre)"

    eq = eq_frame(data.records)
    fig = plots.eq_vs_size(eq[eq.dataset == "mnist-res"], palette, "mnist-res")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "equivariance error"
    assert sorted(_lines(ax)) == ["cnn", "dss", "fourier", "fourier[impl=reference]", "sesn"]
    lo, hi = ax.get_ylim()
    fourier = ax.get_lines()[_lines(ax).index("fourier")].get_ydata()
    assert lo < min(fourier) and min(fourier) < 1e-28 and hi > 1  # float precision is visible
    exact = ax.get_lines()[_lines(ax).index("fourier[impl=reference]")].get_ydata()
    assert np.all(exact > lo) and np.all(exact < min(fourier))  # exact zero drawn on the floor
    fig = plots.eq_per_layer(eq[eq.dataset == "mnist-res"], palette, "mnist-res")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["1", "2", "3", "logits"] and len(_lines(fig.axes[0])) == 5


def test_colour_and_marker_fixed_per_method(data, board):
    palette = plots.Palette(list(data.runs.method))
    styles = {}
    eq = eq_frame(data.records)
    res = board[board.dataset == "mnist-res"]
    for fig in (plots.eq_vs_size(eq[eq.dataset == "mnist-res"], palette, "t"),
                plots.acc_vs_eq(res, palette, "t")):
        for ln in fig.axes[0].get_lines():
            if not ln.get_label().startswith("_") and ln.get_label() != "Pareto front":
                seen = styles.setdefault(ln.get_label(), (ln.get_color(), ln.get_marker()))
                assert seen == (ln.get_color(), ln.get_marker()), ln.get_label()
    # the style is a function of the name: another report draws a method the same way
    alone, mixed = plots.Palette(["zz_new"]), plots.Palette(["zz_new", "cnn"])
    assert alone.style("zz_new") == mixed.style("zz_new")
    assert plots.Palette().style("fourier") == plots.Palette(["a", "b"]).style("fourier")
    # a variant: its method's marker, hollow, a lighter tint of its colour, another line style
    base, variant = palette.style("fourier"), palette.style("fourier[impl=reference]")
    assert variant.marker == base.marker and variant.hollow and not base.hollow
    assert variant.color != base.color and base.linestyle != variant.linestyle
    lighter = [int(variant.color[i:i + 2], 16) >= int(base.color[i:i + 2], 16) for i in (1, 3, 5)]
    assert all(lighter)
    # no two methods of a report are drawn alike
    labels = sorted(set(data.runs.method))
    drawn = {(palette.style(m).color, palette.style(m).marker) for m in labels}
    assert len(drawn) == len(labels)


def test_pareto_front_and_scatter(board):
    assert plots.pareto_front([0.1, 0.2, 0.05, 0.3], [0.9, 0.95, 0.8, 0.94]) == [2, 0, 1]
    res = board[board.dataset == "mnist-res"]
    fig = plots.acc_vs_eq(res, plots.Palette(list(res.method)), "mnist-res")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "equivariance error" in ax.get_xlabel()
    assert "Pareto front" in _lines(ax)
    handles, labels = ax.get_legend_handles_labels()
    with_both = res[res.test_acc_mean.notna() & res.eq_err.notna()]
    assert sorted(set(labels) - {"Pareto front"}) == sorted(with_both.method)


def test_learning_curves_and_perf(data, perf_json):
    from scaleqbench.bench.report.data import history_frame, load_perf

    hist = history_frame(data.records)
    fig = plots.learning_curves(hist[hist.dataset == "mnist-res"], plots.Palette(), "mnist-res")
    loss_ax, acc_ax = fig.axes[:2]
    assert loss_ax.get_ylabel() == "train loss" and acc_ax.get_ylabel() == "validation accuracy (%)"
    assert loss_ax.get_xlabel() == "epoch"
    assert "si_convnet (failed)" in _lines(loss_ax)  # a failed run's curve is still shown
    assert "cnn" in _lines(acc_ax)
    fig = plots.perf_cost(load_perf(perf_json), plots.Palette())
    assert sorted(_lines(fig.axes[0])) == ["cnn", "fourier", "sesn"]
    assert fig.axes[0].get_xlabel() == "input size (px)" and fig.axes[0].get_yscale() == "log"
    # cnn's intervals, one bar per row, per image: [0.9, 1.2] x its step time / batch
    bars = [seg for c in fig.axes[0].collections for seg in c.get_segments()]
    expected = sorted((s, 1000 * f * 0.01 * s / b) for s in (8, 16, 28) for b in (32, 64)
                      for f in (0.9, 1.2))
    got = sorted(tuple(p) for seg in bars for p in seg)
    assert [x for p in got for x in p] == pytest.approx([x for p in expected for x in p])
    assert fig.axes[2].get_ylabel() == "peak memory (MiB)"
    assert sorted(_lines(fig.axes[2])) == ["cnn", "fourier"]  # sesn: no memory reading
    assert plots.perf_cost(load_perf(perf_json.parent / "absent.json"), plots.Palette()) is None
    bare = perf_json.parent / "bare.json"  # a bare list of rows is read too
    bare.write_text(json.dumps(json.loads(perf_json.read_text())["rows"]))
    assert len(load_perf(bare)) == len(load_perf(perf_json)) == 18


def test_small_multiples_one_panel_per_family(data):
    palette = plots.Palette(list(data.runs.method))
    res = per_size_frame(data.records)
    res = res[res.dataset == "mnist-res"]
    fig = plots.acc_vs_size_by_family(res, palette, "mnist-res")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["baseline", "fourier", "scale-equivariant"]
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert sorted(_lines(panels["fourier"])) == ["fourier", "fourier[impl=reference]"]
    assert sorted(_lines(panels["scale-equivariant"])) == ["dss", "sesn"]
    # the other families behind each panel's own, thin and grey, without a legend entry
    grey = [ln for ln in panels["baseline"].get_lines() if ln.get_color() == "#CCCCCC"]
    assert len(grey) == len(set(res.method)) - 1
    eq = eq_frame(data.records)
    fig = plots.eq_vs_size_by_family(eq[eq.dataset == "mnist-res"], palette, "mnist-res")
    assert len(fig.axes) == 2 * 3  # last spatial layer and logits, three families
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    one = res[res.method.isin(["sesn", "dss"])]
    assert plots.acc_vs_size_by_family(one, palette, "x") is None  # one family: no need


def test_bands_are_the_95_percent_interval_over_seeds(data):
    """The band of a line is the Student t interval of the mean at each point, drawn within the
    range an accuracy can take (a t interval over three seeds may reach past 100 %)."""
    palette = plots.Palette(list(data.runs.method))
    res = per_size_frame(data.records)
    res = res[(res.dataset == "mnist-res") & (res.method == "cnn")]
    fig = plots.acc_vs_size(res, palette, "cnn")
    (band,) = fig.axes[0].collections
    at = res[res.x == res.x.min()].acc
    lo, hi = sp.t.interval(0.95, len(at) - 1, loc=at.mean(), scale=sp.sem(at))
    ys = band.get_paths()[0].vertices[:, 1]
    assert np.isclose(ys, 100 * max(lo, 0)).any() and np.isclose(ys, 100 * min(hi, 1)).any()
    assert ys.min() >= 0 and ys.max() <= 100
    assert (res.groupby("x").acc.agg(lambda a: sp.t.interval(0.95, len(a) - 1, loc=a.mean(),
                                                             scale=sp.sem(a))[1]) > 1).any(), \
        "the fixture has an interval past 100 %: the clipping is exercised"


def test_a_long_title_wraps_inside_the_figure_and_sizes_are_whole_pixels(data):
    """The title sits over the panel, wrapped, clear of the legend outside the panel (with
    more methods than fit inside) and within the figure's edges once drawn."""
    palette = plots.Palette(list(data.runs.method))
    res = per_size_frame(data.records)
    res = res[res.dataset == "mnist-res"]
    # more methods than a legend inside the panel takes: copies under other names
    res = pd.concat([res.assign(method=res.method + f"-{k}") for k in range(3)])
    palette = plots.Palette(list(dict.fromkeys(res.method)))
    title = "mnist-res (source embedded, preset quick, eq images 64, consistency images 500)"
    fig = plots.acc_vs_size(res, palette, title)
    ax = fig.axes[0]
    assert ax.get_title().replace("\n", " ") == title and "\n" in ax.get_title()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box, page = ax.title.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
    (outside,) = fig.legends
    assert not box.overlaps(outside.get_window_extent(renderer))
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_equivariance_per_operator_figure():
    """Records holding ``scale-shift`` beside ``ideal`` get one panel per operator; a lifted
    layer's shifted error is its own line, not a copy of the ideal one."""
    records = []
    for method in ("cnn", "sesn_vector"):
        rec = make_record(method, "mnist-res", 0, experiment="ops")
        shifted = {k: dict(v) for k, v in rec.equivariance_error.items()}
        if method == "sesn_vector":
            shifted["block1"] = {"16": 0.01}
        records.append(rec.set(equivariance_error_ops={"scale-shift": shifted}))
    eq = eq_ops_frame(records)
    assert set(eq.operator) == {"ideal", "scale-shift"}
    palette = plots.Palette([r.method for r in records])
    fig = plots.eq_per_operator(eq, palette, "mnist-res")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["ideal", "scale-shift"]
    ideal, shift = (ax.get_lines()[_lines(ax).index("sesn_vector")].get_ydata()
                    for ax in fig.axes[:2])
    assert shift[0] == pytest.approx(0.01) and ideal[0] != pytest.approx(0.01)
    assert plots.eq_per_operator(eq[eq.operator == "ideal"], palette, "x") is None


def test_several_comparisons_get_an_average_rank_summary_and_cd_diagram(tmp_path):
    """Four comparisons (epochs 1-4) of three methods: the summary table of leaderboard.md and
    of the page, and the critical-difference figure beside it."""
    accs = {"sesn": [0.95, 0.94, 0.96, 0.93], "cnn": [0.90, 0.91, 0.89, 0.94],
            "dss": [0.85, 0.93, 0.88, 0.90]}
    folder = tmp_path / "multi"
    for method, per_epochs in accs.items():
        for epochs, acc in enumerate(per_epochs, 1):
            RunStore(folder).write(RunRecord.for_spec(
                RunSpec(method, seed=0, experiment="multi", epochs=epochs), status="ok",
                test_acc=acc, params=1))
    out = tmp_path / "report"
    written = build_report([folder], out)
    md = (out / "leaderboard.md").read_text()
    assert "## Average ranks over the comparisons" in md
    # per comparison (1 the most accurate): sesn 1 1 1 2, cnn 2 3 2 1, dss 3 2 3 3
    table = md[md.index("| method   | average rank"):].split("\n\n")[0]
    assert "| sesn     | 1.25" in table and "| cnn      | 2.00" in table
    assert "| dss      | 2.75" in table
    cd = 2.343 * math.sqrt(3 * 4 / (6 * 4))
    assert f"critical difference (α = 0.05): {cd:.2f}" in md
    page = (out / "index.html").read_text()
    assert 'id="average-ranks"' in page and 'id="average_ranks"' in page
    assert page.index('id="average_ranks"') < page.index('<h2 id="mnist-res')
    assert out / "figures" / "average_ranks.png" in written
    assert plots.cd_diagram(pd.DataFrame({"method": [], "average_rank": []}), 1.0, 3,
                            plots.Palette(), "x") is None


def test_cd_cliques_join_what_the_critical_difference_does_not_separate():
    from scaleqbench.bench.report.plots.ranks import cliques

    assert cliques([1.0, 1.5, 2.0, 4.0], cd=1.1) == [(0, 2)]
    assert cliques([1.0, 2.0, 3.0, 4.0], cd=1.5) == [(0, 1), (1, 2), (2, 3)]
    assert cliques([1.0, 3.0, 5.0], cd=1.0) == []  # every pair separated
    assert cliques([1.0, 1.1, 1.2], cd=5.0) == [(0, 2)]


def test_log_axes_label_plain_numbers_and_only_some_minor_ticks():
    """Under two decades, minor ticks are labelled at 2 and 5 times a power of ten only; over
    two, not at all; the major labels are plain numbers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from scaleqbench.bench.report.plots import kit

    fig, (narrow, wide) = kit.figure(2)
    for ax, top in ((narrow, 300), (wide, 3000)):
        ax.plot([1, 2], [8, top])
        ax.set_yscale("log")
        kit.plain_log_labels(ax)
    FigureCanvasAgg(fig).draw()

    def minor(ax) -> set[str]:  # the labels of the minor ticks within the axis' limits
        lo, hi = ax.get_ylim()
        return {t.get_text() for t in ax.get_yticklabels(minor=True)
                if lo <= t.get_position()[1] <= hi} - {""}

    assert minor(narrow) == {"20", "50", "200"} and minor(wide) == set()
    assert {t.get_text() for t in narrow.get_yticklabels()} >= {"10", "100"}
