"""``make test-gpu``: the GPU checks and their report, wherever a CUDA GPU is (< 10 min on an H100).

Without a GPU it says so in one line and exits 0. With one it first builds what needs
no GPU (the embedded datasets' caches, the DISCO bases every config fits), then:

1. ``pytest -m gpu`` (tests/test_gpu.py);
2. ``bench perf --device cuda`` for every method at sizes 8, 16 and 28 (MNIST configs),
   and at STL-10 sizes (49, 73, 97: the stl10-res range) for every method's STL-10
   configuration, the WRN ones among them;
3. the DSS layer's dilated convolution against the CPU's polyphase rewrite, timed on CUDA;
4. one ``bench run`` of the paper preset of ``fourier`` and of ``cnn`` for one epoch;

and writes ``results/reference/gpu/<card>.md`` (the card named in it), with every
step's outcome; the exit status is 1 when a step failed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "reference" / "gpu"
BENCH = [sys.executable, "-m", "scaleqbench.bench.cli.main"]
MNIST_SIZES = "8,16,28"
STL_SIZES = "49,73,97"


def step(report: list[str], title: str, argv: list[str], timeout: int = 900) -> tuple[bool, str]:
    """Run ``argv``; add its outcome (and its last lines when it failed) to the report."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        ok, text = done.returncode == 0, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        ok, text = False, f"timed out after {timeout} s\n{exc.stdout or ''}"
    took = time.perf_counter() - t0
    report.append(f"- {title}: {'ok' if ok else 'FAILED'} ({took:.0f} s)")
    if not ok:
        tail = "\n".join(text.strip().splitlines()[-15:])
        report.append(f"\n```\n{tail}\n```\n")
    print(f"{title}: {'ok' if ok else 'FAILED'} ({took:.0f} s)", flush=True)
    return ok, text


def prebuild(cache: Path) -> None:
    """What needs no GPU: dataset caches and the DISCO bases of every configuration."""
    from scaleqbench import methods
    from scaleqbench.datasets import load_or_build

    for name in ("mnist-res", "mnist-scale"):
        load_or_build(name, cache_dir=cache)
    for config in ("quick", "mnist", "stl10"):
        methods.create("disco", in_channels=3 if config == "stl10" else 1, config=config)


def stl_methods() -> list[str]:
    from scaleqbench import methods

    names = [e if isinstance(e, str) else e.name for e in methods.list_methods()]
    return [n for n in names if "stl10" in methods.get_method(n).configs]


def dilated_timing() -> list[str]:
    """The DSS dilated convolution on CUDA: cuDNN's dilated kernel against the CPU's
    polyphase rewrite (which the layer uses on the CPU), on a paper-size DSS input."""
    import torch
    import torch.nn.functional as F

    from scaleqbench.methods.dss.layers import dilated_conv2d

    dev = torch.device("cuda")
    x, w = torch.randn(128, 32 * 4, 28, 28, device=dev), torch.randn(32, 32 * 4, 7, 7, device=dev)
    lines = ["| dilation | cuDNN dilated (ms) | polyphase rewrite (ms) |", "|---|---|---|"]
    for d in (2, 4, 8):
        torch.testing.assert_close(dilated_conv2d(x, w, None, d), _polyphase(x, w, d),
                                   rtol=1e-3, atol=1e-3)
        times = {}
        for label, fn in (("dilated", lambda: F.conv2d(x, w, padding=3 * d, dilation=d)),
                          ("polyphase", lambda: _polyphase(x, w, d))):
            for _ in range(3):
                fn()
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            torch.cuda.synchronize(dev)
            times[label] = (time.perf_counter() - t0) / 20 * 1e3
        lines.append(f"| {d} | {times['dilated']:.3f} | {times['polyphase']:.3f} |")
    return ["On CUDA the layer uses cuDNN's dilated convolution; on the CPU the polyphase "
            "rewrite. Batch 128, 128 input channels (32 maps x 4 scales), 32 output, 7x7, "
            "28x28:", "", *lines]


def _polyphase(x, w, d):
    """The layer's CPU computation (space-to-batch), run on the GPU for the comparison."""
    import torch.nn.functional as F

    b, c, h, wd = x.shape
    hp, wp = -(-h // d), -(-wd // d)
    x = F.pad(x, (0, wp * d - wd, 0, hp * d - h))
    x = x.reshape(b, c, hp, d, wp, d).permute(0, 3, 5, 1, 2, 4).reshape(b * d * d, c, hp, wp)
    y = F.conv2d(x, w, None, padding=w.shape[-1] // 2)
    o = y.shape[1]
    y = y.reshape(b, d, d, o, hp, wp).permute(0, 3, 4, 1, 5, 2).reshape(b, o, hp * d, wp * d)
    return y[..., :h, :wd]


def perf_table(path: Path) -> list[str]:
    from scaleqbench.bench.run.perf import format_perf_table

    rows = json.loads(path.read_text())["rows"]
    return ["```", format_perf_table(rows), "```"]


def run_table(folder: Path) -> list[str]:
    from scaleqbench.bench.store.run_store import RunStore

    lines = ["| method | status | test acc | train s (1 epoch) | img/s | peak MB (CUDA allocated) "
             "| nondeterministic ops |", "|---|---|---|---|---|---|---|"]
    for rec in sorted(RunStore(folder).scan()[0], key=lambda r: r.method):
        lines.append(f"| {rec.method} | {rec.status} | {100 * (rec.test_acc or 0):.2f} % | "
                     f"{rec.train_time_s or 0:.1f} | {rec.train_img_per_s or 0:.0f} | "
                     f"{rec.peak_mem_mb or 0:.0f} | "
                     f"{', '.join(rec.nondeterministic_ops or []) or 'none'} |")
    return lines


def _header(card: str) -> list[str]:
    import torch

    return [f"# GPU checks on {card}", "",
            f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}; {time.strftime('%Y-%m-%d')}", "",
            "Made by `make test-gpu` (tests/gpu/gpu_checks.py).", "", "## Steps", ""]


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("make test-gpu: torch sees no CUDA GPU here; nothing to check")
        return 0
    card = torch.cuda.get_device_name(0)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", card).strip("-").lower()
    work = Path(tempfile.mkdtemp(prefix="gpu-checks-"))
    cache = work / "cache"
    t0 = time.perf_counter()
    prebuild(cache)
    print(f"built the dataset caches and DISCO bases in {time.perf_counter() - t0:.0f} s")
    report = _header(card)
    failed = False
    ok, _ = step(report, "pytest -m gpu", [sys.executable, "-m", "pytest", "-m", "gpu", "-q",
                                           "-p", "no:cacheprovider", "tests/test_gpu.py"])
    failed |= not ok
    mnist = work / "perf-mnist.json"
    ok, _ = step(report, f"bench perf --device cuda, every method, sizes {MNIST_SIZES}",
                 [*BENCH, "perf", "--device", "cuda", "--methods", "all", "--sizes",
                  MNIST_SIZES, "--config", "mnist", "--quiet", "--out", str(mnist)])
    failed |= not ok
    stl = []
    for name in stl_methods():
        path = work / f"perf-stl10-{name}.json"
        ok, _ = step(report, f"bench perf --device cuda, {name} (stl10), sizes {STL_SIZES}",
                     [*BENCH, "perf", "--device", "cuda", "--methods", name, "--config",
                      "stl10", "--channels", "3", "--sizes", STL_SIZES, "--batch", "32",
                      "--quiet", "--out", str(path)])
        failed |= not ok
        if ok:
            stl += json.loads(path.read_text())["rows"]
    (work / "perf-stl10.json").write_text(json.dumps({"rows": stl}))
    runs = work / "paper-runs"
    ok, _ = step(report, "bench run --preset paper --methods fourier,cnn --epochs 1",
                 [*BENCH, "run", "--methods", "fourier,cnn", "--preset", "paper", "--epochs",
                  "1", "--device", "cuda", "--cache-dir", str(cache), "--out", str(runs),
                  "--quiet", "--no-report"])
    failed |= not ok
    report += ["", "## bench perf, MNIST configs (batch 128)", ""]
    report += perf_table(mnist) if mnist.exists() else ["(no rows)"]
    report += ["", "## bench perf, STL-10 configs (batch 32)", ""]
    report += perf_table(work / "perf-stl10.json") if stl else ["(no rows)"]
    report += ["", "## DSS dilated convolution on CUDA", ""]
    try:
        report += dilated_timing()
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        failed = True
        report.append(f"FAILED: {exc}")
    report += ["", "## bench run, paper preset, one epoch (embedded mnist-res)", ""]
    report += run_table(runs) if runs.exists() else ["(no records)"]
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"{slug}.md"
    target.write_text("\n".join(report) + "\n")
    print(f"wrote {target.relative_to(ROOT)} ({time.perf_counter() - t0:.0f} s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
