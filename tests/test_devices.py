"""What changes on a GPU, checked on the CPU: device choice and refusal, numerics settings,
synchronisation that names its device, memory definitions. (Per-device work, the training
loop's sync-free totals and the leaderboard's device split: tests/test_device_work.py.)

The same behaviours on a real GPU are tests/test_gpu.py's (``-m gpu``).
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.errors import BadArgumentError
from scaleqbench.bench.run import devices
from scaleqbench.bench.spec import RunSpec


ROOT = Path(__file__).resolve().parent.parent


# --- which device ------------------------------------------------------------------------------

def test_auto_is_cuda_exactly_when_torch_sees_one(monkeypatch):
    assert devices.resolve_device("auto") == torch.device("cpu")  # conftest: no GPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")
    assert devices.resolve_device("cuda:1") == torch.device("cuda:1")
    assert devices.device_kind("cuda:1") == "cuda" and devices.device_kind("cpu") == "cpu"


def test_mps_is_refused_in_one_line_saying_why(tmp_path, capsys):
    with pytest.raises(BadArgumentError, match="MPS has no float64"):
        devices.resolve_device("mps")
    out = tmp_path / "exp"
    for launcher in ("local", "slurm"):
        code = cli.main(["run", "--methods", "cnn", "--device", "mps", "--launcher", launcher,
                         "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "MPS has no float64" in err
        assert not out.exists()


def test_tf32_on_the_cpu_is_refused(tmp_path, capsys):
    code = cli.main(["run", "--methods", "cnn", "--device", "cpu", "--precision", "tf32",
                     "--out", str(tmp_path / "exp"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--precision tf32 is a CUDA mode" in err and err.count("\n") == 1
    assert not (tmp_path / "exp").exists()


def test_precision_is_protocol_and_determinism_is_not():
    plain = RunSpec("cnn")
    assert RunSpec("cnn", precision="fp32").run_id == plain.run_id  # the default: no new id
    assert RunSpec("cnn", precision="bf16").run_id != plain.run_id
    assert RunSpec("cnn", deterministic=False).run_id == plain.run_id  # how, not what
    assert RunSpec.from_json(RunSpec("cnn", deterministic=False).to_json()).deterministic is False
    with pytest.raises(ValueError, match="precision 'fp16'"):
        RunSpec("cnn", precision="fp16")


# --- numerics ---------------------------------------------------------------------------------

def test_numerics_sets_and_puts_back_every_flag():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
              torch.are_deterministic_algorithms_enabled())
    with devices.numerics("tf32", deterministic=False):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    with devices.numerics("fp32", deterministic=True):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.are_deterministic_algorithms_enabled()) == before


def test_numerics_names_the_ops_without_a_deterministic_kernel():
    message = ("upsample_bilinear2d_backward_out_cuda does not have a deterministic "
               "implementation, but you set 'torch.use_deterministic_algorithms(True, "
               "warn_only=True)'.")
    with pytest.warns(UserWarning, match="unrelated"):  # other warnings are said, once
        with devices.numerics("fp32", deterministic=True) as unsure:
            for _ in range(3):
                warnings.warn(message, UserWarning)
                warnings.warn("unrelated", UserWarning)
    assert unsure == ["upsample_bilinear2d_backward_out_cuda"]


def test_bf16_training_steps_run_for_every_method():
    """Under ``--precision bf16`` every method's training step runs (CPU autocast here): the
    Fourier network computes in float32 inside it (its autograd functions write buffers of
    their input's dtype), the loss is a finite float32."""
    from scaleqbench.bench.run import recipes

    for entry in methods.list_methods():
        name = entry if isinstance(entry, str) else entry.name
        torch.manual_seed(0)
        model = methods.create(name, in_channels=1, num_classes=10, config="quick")
        x, y = torch.randn(3, 1, 28, 28), torch.randint(0, 10, (3,))
        with devices.training_autocast(torch.device("cpu"), "bf16"):
            loss, _ = recipes.loss_for(name, "quick")(model, x, y)
        loss.backward()
        assert loss.dtype == torch.float32 and torch.isfinite(loss), name
    with devices.training_autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")


# --- synchronisation and memory name their device ---------------------------------------------

_DEFAULTS_TO_DEVICE_0 = {"synchronize", "max_memory_allocated", "reset_peak_memory_stats",
                         "mem_get_info", "get_rng_state", "set_rng_state", "get_device_name",
                         "memory_allocated"}


def test_no_cuda_call_falls_back_to_gpu_0():
    """A ``torch.cuda`` query without its device acts on GPU 0 (making a context there) when
    the run is on ``cuda:N``; and asking for every GPU's RNG state makes one on each."""
    bad = []
    for path in [*ROOT.glob("bench/**/*.py"), *ROOT.glob("methods/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = ast.unparse(node.func.value)
            if owner != "torch.cuda":
                continue
            name = node.func.attr
            if name in ("get_rng_state_all", "set_rng_state_all") or (
                    name in _DEFAULTS_TO_DEVICE_0 and not node.args and not node.keywords
                    and name != "set_rng_state"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} torch.cuda.{name}")
    assert not bad


def test_synchronize_and_peak_memory_name_the_device(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: seen.append(device))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**20)
    devices.synchronize(torch.device("cuda:1"))
    devices.synchronize(torch.device("cpu"))
    assert seen == [torch.device("cuda:1")]
    assert devices.peak_memory_mb(torch.device("cuda:1")) == 3.0
    assert devices.peak_memory_definition(torch.device("cuda:1")) == "CUDA allocated"
    assert devices.peak_memory_mb(torch.device("cpu")) > 0


def test_perf_names_its_memory_definition():
    from scaleqbench.bench.run.perf import format_perf_table, run_perf

    rows = run_perf([("cnn", {})], sizes=[8], batch=2, repeats=1, warmup=0, config="quick",
                    progress=False)
    assert rows[0]["peak_mem_def"] == "RSS growth"
    assert "peak_mem_mb (RSS growth)" in format_perf_table(rows).splitlines()[0]


def test_the_memory_estimate_sees_the_grids_the_ring_nonlinearity_keeps():
    from scaleqbench.methods.fourier.nonlinearity import RingNonlinearity

    layer = RingNonlinearity(3, 8, 16, pool=2, impl="tensor")
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x).sum().backward()
    # the grids are (R, M, M, c), maps last; the spectra (K, K, B, C) are square in front
    grids = [t for t in saved if t.dim() == 4 and t.shape[1] == t.shape[2] != t.shape[0]]
    assert grids and sum(t.numel() for t in grids) >= 2 * 3 * 8 * 8
