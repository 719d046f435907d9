"""The sub-commands behind ``bench`` (argument parsing lives in :mod:`bench.cli`)."""

from __future__ import annotations

import argparse
import logging
import shlex
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from scalebench.bench.errors import BadArgumentError, DataSourceError
from scalebench.bench.spec import PRESETS, format_method, parse_int_list, parse_methods

log = logging.getLogger(__name__)


def _quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "quiet", False))


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from scalebench import methods

        rows = []
        for name in methods.list_methods():
            e = methods.get_method(name)
            rows.append({"method": name + (f" (= {e.alias_of})" if e.alias_of else ""),
                         "family": e.family, "paper": e.paper,
                         "configs": ", ".join(e.configs), "source": e.source})
        print(pd.DataFrame(rows).to_markdown(index=False))
        print("\nplus timm:<model-name> for any timm model (e.g. timm:resnet18)")
    elif args.what == "datasets":
        from scalebench.datasets import DATASETS

        rows = [{"dataset": d.name, "sources": ", ".join(d.sources),
                 "sizes": f"{min(d.sizes)}..{max(d.sizes)}" if len(d.sizes) > 1 else d.sizes[0],
                 "description": d.description} for d in DATASETS.values()]
        print(pd.DataFrame(rows).to_markdown(index=False))
    else:
        rows = [{"preset": p.name, "config": p.config or "dataset family (mnist / stl10)",
                 "description": p.description} for p in PRESETS.values()]
        print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


def _load_dataset(name: str, args: argparse.Namespace, seed: int):
    from scalebench.datasets import load_or_build

    t0 = time.perf_counter()
    ds, path = load_or_build(name, source=args.source, seed=seed, data_root=args.data_root,
                             cache_dir=args.cache_dir)
    return ds, path, time.perf_counter() - t0


def cmd_data(args: argparse.Namespace) -> int:
    ds, path, secs = _load_dataset(args.dataset, args, args.seed)
    print(f"dataset {ds.name} (protocol {ds.protocol}, source {ds.source}, seed {ds.seed}) "
          f"ready in {secs:.1f} s")
    print(f"cache: {path or '(not cached)'}")
    print(f"channels {ds.in_channels}, classes {ds.num_classes}, full size {ds.full_size}, "
          f"augmentation {ds.augment or 'none'}")
    for split_name in ("train", "val", "test"):
        split = getattr(ds, split_name)
        print(f"{split_name:5s} {len(split):6d} images")
    if ds.scale_kind == "size":
        hist = ds.train.size_histogram()
        print("train images per size: " + ", ".join(f"{s}:{n}" for s, n in hist.items()))
    else:
        counts = torch.histc(ds.train.scale, bins=7, min=0.3, max=1.0).long().tolist()
        edges = [0.3 + 0.1 * i for i in range(8)]
        print("train images per shrink factor: " + ", ".join(
            f"[{a:.1f},{b:.1f}):{n}" for a, b, n in zip(edges, edges[1:], counts)))
    return 0


def _launcher(args: argparse.Namespace):
    from scalebench.bench.launchers import LocalLauncher

    from scalebench.bench.cli import SLURM_FLAGS

    if args.launcher == "local":
        given = [f for f in (*SLURM_FLAGS, "sbatch_extra", "launcher_config", "detach")
                 if getattr(args, f) not in (None, [], False)]
        if given:
            flags = ", ".join("--" + f.replace("_", "-") for f in given)
            raise BadArgumentError(f"{flags} only apply to --launcher slurm (a local sweep "
                                   "runs here); add --launcher slurm or drop them")
        return LocalLauncher(progress=not _quiet(args))
    from scalebench.bench.slurm import SlurmLauncher
    from scalebench.bench.slurm_config import load_slurm_config, parse_sbatch_extra

    overrides = {k: getattr(args, k) for k in SLURM_FLAGS}
    overrides["sbatch_extra"] = parse_sbatch_extra(args.sbatch_extra)
    config = load_slurm_config(args.launcher_config, overrides)
    if shutil.which("sbatch") is None:
        raise BadArgumentError("--launcher slurm needs Slurm's sbatch on PATH (run bench on a "
                               "login node), or use --launcher local")
    return SlurmLauncher(config, progress=not _quiet(args))


def prepare_datasets(specs) -> None:
    """Make sure every dataset the runs need is cached, once, before any job starts.

    A missing data source then fails the command with one line instead of failing every
    run, and Slurm tasks find the cache filled instead of racing to build it. A dataset
    already cached is only checked, not loaded: each run loads its own.
    """
    from scalebench.datasets import ensure_cached

    for key in dict.fromkeys((s.dataset, s.source, s.seed, s.data_root, s.cache_dir)
                             for s in specs):
        ensure_cached(*key)


def write_report(folders: list[Path], out_dir: Path, perf_json: Path | None) -> Path:
    from scalebench.bench.report import build_report

    perf = perf_json if perf_json is not None and perf_json.is_file() else None
    written = build_report(folders, out_dir, perf_json=perf)
    figures = sum(1 for f in written if f.suffix == ".png")
    page = next(f for f in written if f.name == "index.html")
    print(f"report: {len(written)} files ({figures} figures) in {out_dir}; open {page}")
    return page


def _finish(out: Path, records: list[dict], strict: bool = True, report: bool = True) -> int:
    """Collate and print the leaderboard (and write the report); non-zero when ``strict``
    and every run failed."""
    from scalebench.bench.leaderboard import collate, format_leaderboard, summarize, write_leaderboard

    board = summarize(collate([out]))
    md, csv = write_leaderboard(board, out)
    print(format_leaderboard(board))
    print(f"\nwrote {md} and {csv}")
    if report:
        from scalebench.bench.cli import PERF_JSON

        try:
            write_report([out], out / "report", Path(PERF_JSON))
        except Exception as exc:  # the records and leaderboard are safe; say so, don't crash
            log.warning("report not written (%s: %s); retry with `bench report %s`",
                        type(exc).__name__, exc, out)
    failed = [r for r in records if r and r.get("status") != "ok"]
    for r in failed:
        last = (r.get("error") or "").strip().splitlines()[-1:] or ["?"]
        print(f"failed: {r['method']} seed {r['seed']}: {last[0]} (record {r['run_id']})")
    return 1 if strict and failed and len(failed) == len(records) else 0


def cmd_run(args: argparse.Namespace) -> int:
    from scalebench.bench.cli import sweep_specs
    from scalebench.bench.launchers import pending
    from scalebench.bench.records import ExperimentLock, ensure_writable, load_record, record_path
    from scalebench.bench.sweep import run_states, save_sweep

    specs, out = sweep_specs(args)
    launcher = _launcher(args)
    ensure_writable(out)
    command = "bench " + " ".join(shlex.quote(a) for a in args.argv)
    with ExperimentLock(out):
        save_sweep(out, specs)
        todo = pending(specs, out, retry_failed=args.retry_failed)
        done = len(specs) - len(todo)
        active: set[str] = set()
        if args.launcher == "slurm" and todo:
            active = {r["run_id"] for r in run_states(out) if r["state"] in ("queued", "running")}
            active &= {s.run_id for s in todo}
            todo = [s for s in todo if s.run_id not in active]
        print(f"bench run: {len(specs)} runs in {out} ({done} already done"
              + (f", {len(active)} still queued or running on Slurm" if active else "")
              + f", {len(todo)} to run)")
        prepare_datasets(todo)
        try:
            if args.launcher == "local":
                records = launcher.launch(todo, out, command)
            else:
                jobs = launcher.submit(todo, out, command) if todo else {}
                if args.detach:
                    ids = sorted({j.job_id.split("_")[0] for j in jobs.values()})
                    print(f"bench run: submitted {len(jobs)} task(s) as Slurm job "
                          f"{', '.join(ids) or '-'}; follow with `bench status {out}`, "
                          f"collate with `bench collect {out}`")
                    return 0
                launcher.follow(todo, jobs, out)
                records = [load_record(record_path(out, s.run_id)) for s in todo]
        except KeyboardInterrupt:
            where = ("jobs keep running on the cluster; see `bench status`"
                     if args.launcher == "slurm" else "finished records are kept in "
                     f"{out}/runs")
            print(f"\nbench run: interrupted; {where}; re-run the same command to resume",
                  flush=True)
            return 130
        return _finish(out, records, report=args.report)


def cmd_status(args: argparse.Namespace) -> int:
    from scalebench.bench.slurm import STATES
    from scalebench.bench.sweep import run_states

    rows = run_states(Path(args.experiment))
    table = pd.DataFrame(rows, columns=["method", "seed", "state", "job", "run_id", "detail"])
    print(table.to_markdown(index=False))
    counts = table.state.value_counts()
    print("\n" + ", ".join(f"{counts[s]} {s}" for s in STATES if s in counts))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from scalebench.bench.records import ExperimentLock, load_records
    from scalebench.bench.sweep import collect_unfinished, load_sweep

    out = Path(args.experiment)
    load_sweep(out)
    with ExperimentLock(out):
        settled = collect_unfinished(out) if shutil.which("sacct") else 0
        if settled:
            print(f"bench collect: {settled} run(s) ended on Slurm without a record; "
                  "recorded as failed")
        return _finish(out, [r for r in load_records(out) if r.get("status") != "ok"],
                       strict=False, report=args.report)


def cmd_report(args: argparse.Namespace) -> int:
    folders = [Path(f) for f in args.folders]
    out = Path(args.out) if args.out else (folders[0] / "report" if len(folders) == 1
                                           else Path("results/report"))
    write_report(folders, out, Path(args.perf) if args.perf else None)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from scalebench.bench.leaderboard import collate, format_leaderboard, summarize, write_leaderboard

    board = summarize(collate(args.folders))
    print(format_leaderboard(board))
    if args.out:
        md, csv = write_leaderboard(board, Path(args.out))
        print(f"\nwrote {md} and {csv}")
    return 0


def _models_for_equivariance(args: argparse.Namespace, ds):
    """(label, model) pairs: fresh models from --methods, one per --init-seeds entry (same
    label), or models from --checkpoint files."""
    from scalebench import methods

    if args.checkpoint:
        for path in args.checkpoint:
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=False)
                spec = ckpt["spec"]
            except (OSError, KeyError, RuntimeError) as exc:
                raise DataSourceError(f"cannot read checkpoint {path} ({exc}); pass a "
                                      "checkpoints/<run-id>.pt written by bench run") from exc
            model = methods.create(spec["method"], in_channels=ds.in_channels,
                                   num_classes=ds.num_classes, config=ckpt["config"],
                                   **spec.get("method_kwargs", {}))
            model.load_state_dict(ckpt["state_dict"])
            yield f"{format_method(spec['method'], spec.get('method_kwargs', {}))} " \
                  f"(trained, seed {spec['seed']})", model
        return
    config = args.config or ds.method_config
    init_seeds = parse_int_list(args.init_seeds, "init seed", lo=0)
    for name, kwargs in parse_methods(args.methods):
        for seed in init_seeds:
            torch.manual_seed(seed)
            yield format_method(name, kwargs), methods.create(
                name, in_channels=ds.in_channels, num_classes=ds.num_classes, config=config,
                **kwargs)


def cmd_equivariance(args: argparse.Namespace) -> int:
    from scalebench.bench.evaluate import eq_subset, measure_equivariance
    from scalebench.bench.metrics import headline_eq_err
    from scalebench.bench.train import pick_device

    ds, _, _ = _load_dataset(args.dataset, args, args.seed)
    sizes = (parse_int_list(args.sizes, "size", lo=1, hi=ds.full_size - 1) if args.sizes
             else list(ds.eq_sizes))
    if args.images < 1:
        raise BadArgumentError(f"--images must be >= 1, got {args.images}")
    device = pick_device(args.device)
    images = eq_subset(ds, args.images, args.seed)
    rows = []
    for label, model in _models_for_equivariance(args, ds):
        model = model.to(device).eval()
        try:
            per_layer = measure_equivariance(model, images, sizes, device)
        except NotImplementedError as exc:
            print(f"{label}: {exc}")
            continue
        row = {"method": label, "eq_err (last layer)": headline_eq_err(per_layer)}
        for layer, per_size in per_layer.items():
            row[layer] = sum(per_size.values()) / max(len(per_size), 1)
        rows.append(row)
    if not rows:
        return 1
    table = pd.DataFrame(rows)
    groups = table.groupby("method", sort=False)
    inits = groups.size()
    what = ""
    if inits.max() > 1:  # several initialisations per method: "mean ± std" per column
        mean, std = groups.mean(), groups.std()
        table = mean.apply(lambda col: [f"{m:.3e} ± {sd:.1e}" for m, sd in
                                        zip(col, std[col.name])])
        table.insert(0, "inits", inits)
        table = table.reset_index()
        what = f"mean ± std over {inits.max()} initialisations, "
    print(f"equivariance error on {len(images)} {ds.name} test images "
          f"(sizes {min(sizes)}..{max(sizes)} -> full {ds.full_size}), {what}mean over sizes:")
    print(table.to_markdown(index=False, floatfmt=".3e"))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    try:
        from scalebench.bench import perf
    except ImportError as exc:
        raise BadArgumentError(f"bench perf is not available in this build ({exc})") from exc
    from scalebench.bench.train import pick_device

    sizes = parse_int_list(args.sizes, "size", lo=1)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise BadArgumentError("--batch and --repeats must be >= 1 and --warmup >= 0")
    opts = dict(batch=args.batch, repeats=args.repeats, warmup=args.warmup, config=args.config,
                in_channels=args.channels, device=str(pick_device(args.device)),
                progress=not _quiet(args))
    if args.allocator:
        allocs = [a.strip() for a in args.allocator.split(",") if a.strip()]
        if not allocs or set(allocs) - set(perf.ALLOCATORS) or args.rounds < 1:
            raise BadArgumentError(f"--allocator takes {' and/or '.join(perf.ALLOCATORS)} "
                                   f"(got {args.allocator!r}) and --rounds must be >= 1")
        rows = perf.run_perf_isolated(parse_methods(args.methods), sizes, allocs,
                                      rounds=args.rounds, **opts)
    else:
        rows = perf.run_perf(parse_methods(args.methods), sizes, **opts)
    print(perf.format_perf_table(rows))
    perf.write_perf_json(rows, Path(args.out))
    print(f"\nwrote {args.out}")
    return 0
