"""What changes on a GPU, checked on the CPU: device choice and refusal, numerics settings,
synchronisation that names its device, memory definitions, per-device chunking (on meta
tensors), the training loop's sync-free totals, the leaderboard's device split.

The same behaviours on a real GPU are tests/test_gpu.py's (``-m gpu``).
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.errors import BadArgumentError, NonFiniteLossError
from scaleqbench.bench.run import devices, train
from scaleqbench.bench.run.devices import StuckDeviceError
from scaleqbench.bench.run.train_steps import EpochTotals, on_device
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.methods.fourier import chunking

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

    layer = RingNonlinearity(3, 8, 16, pool=2)
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x).sum().backward()
    grids = [t for t in saved if t.dim() == 4 and t.shape[1] == t.shape[3]]  # (R, M, c, M)
    assert grids and sum(t.numel() for t in grids) >= 2 * 3 * 8 * 8


# --- per-device work -------------------------------------------------------------------------

class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _fourier_ops(batch: int) -> int:
    """Operations of one training step of the paper's MNIST Fourier network on meta tensors
    (no data: the same ops a GPU would launch)."""
    torch.manual_seed(0)
    model = methods.create("fourier", in_channels=1, num_classes=10, config="mnist").to("meta")
    x = torch.randn(batch, 1, 28, 28, device="meta")
    with _Ops() as ops:
        model(x).sum().backward()
    return ops.count


def test_off_the_cpu_the_fourier_network_does_not_chunk(monkeypatch):
    """On the CPU the layers cut their maps into cache-sized chunks, so a larger batch is
    more (small) operations; elsewhere one chunk: the operations do not grow with the batch."""
    _fourier_ops(2)  # the plans and bases of each size are built once
    assert _fourier_ops(64) == _fourier_ops(2)
    monkeypatch.setattr(chunking, "_budget", lambda device: chunking.CHUNK_ELEMENTS)
    assert _fourier_ops(64) > 1.5 * _fourier_ops(2)


def test_chunk_budgets_per_device(monkeypatch):
    assert chunking.chunk_budget("cpu") == chunking.CHUNK_ELEMENTS
    assert chunking.chunk_budget("meta") == chunking.UNLIMITED

    class Props:
        total_memory = 80 * 2**30

    chunking._budget.cache_clear()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    try:
        assert chunking.chunk_budget("cuda:0") == 80 * 2**30 // 16 // 8
    finally:
        chunking._budget.cache_clear()


def test_the_fourier_head_reuses_its_band_weights():
    from scaleqbench.methods.fourier.basis import band_mean_square

    assert band_mean_square([1, 2], 7) is band_mean_square([1, 2], 7)


def test_dss_uses_the_dilated_convolution_off_the_cpu():
    from scaleqbench.methods.dss.layers import dilated_conv2d

    x, w = torch.randn(2, 3, 20, 20), torch.randn(4, 3, 5, 5)
    calls = []

    class Convs(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if "convolution" in str(func):
                calls.append(args[5])  # dilation
            return func(*args, **(kwargs or {}))

    with Convs():
        cpu = dilated_conv2d(x, w, None, 4)
        meta = dilated_conv2d(x.to("meta"), w.to("meta"), None, 4)
    assert calls == [[1, 1], [4, 4]]  # the CPU's polyphase rewrite, then a dilated one
    assert meta.shape == cpu.shape
    torch.testing.assert_close(torch.nn.functional.conv2d(x, w, padding=8, dilation=4), cpu,
                               rtol=1e-5, atol=1e-5)


# --- the training loop ---------------------------------------------------------------------------

def test_epoch_totals_name_the_first_non_finite_step_of_a_window():
    totals = EpochTotals(torch.device("cpu"), epoch=3, check_every=4)
    y = torch.tensor([0, 1])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    totals.add(0, torch.tensor(1.0), logits, y)
    totals.add(1, torch.tensor(float("inf")), logits, y)  # not looked at yet: one sync per 4
    totals.add(2, torch.tensor(float("nan")), logits, y)
    with pytest.raises(NonFiniteLossError) as info:
        totals.add(3, torch.tensor(2.0), logits, y)
    assert (info.value.epoch, info.value.step, info.value.value) == (3, 1, float("inf"))


def test_epoch_totals_equal_the_plain_sums():
    totals = EpochTotals(torch.device("cpu"), epoch=1)
    assert totals.every == 1  # the CPU checks every step, before its backward pass
    losses, sizes = [0.7, 0.30000001, 1.25], [3, 2, 3]
    plain, correct = 0.0, 0
    for step, (loss, n) in enumerate(zip(losses, sizes)):
        loss32 = torch.tensor(loss)
        logits = torch.randn(n, 4, generator=torch.Generator().manual_seed(step))
        y = torch.arange(n) % 4
        totals.add(step, loss32, logits, y)
        plain += loss32.item() * n
        correct += int((logits.argmax(1) == y).sum())
    assert totals.values() == (plain / 8, correct / 8)


def test_small_splits_move_to_the_device(mnist_res):
    assert on_device(mnist_res.train, torch.device("cpu")) is mnist_res.train
    moved = on_device(mnist_res.train, torch.device("meta"))
    assert all(t.device.type == "meta" for t in moved.images.values())
    assert all(t.device.type == "meta" for t in moved.labels.values())


def test_a_sticky_cuda_error_records_the_run_and_stops_the_process(tmp_path, cache_dir,
                                                                     monkeypatch):
    """After a device-side assert no later CUDA call of the process can succeed: the run's
    failed record is written, then the sweep in this process stops with one line."""
    def assert_fails(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered\nCompile with ...")

    monkeypatch.setattr(train, "_train", assert_fails)
    spec = RunSpec("cnn", epochs=1, limit_train=20, limit_eval=10, eq_images=2, device="cpu",
                   cache_dir=str(cache_dir))
    with pytest.raises(StuckDeviceError, match="device-side assert triggered"):
        train.run_one(spec, tmp_path)
    record = RunStore(tmp_path).current(spec.run_id)
    assert record.status == "failed" and "device-side assert" in record.error


def test_a_record_says_where_and_how_it_ran(tmp_path, cache_dir):
    spec = RunSpec("cnn", epochs=1, limit_train=20, limit_eval=10, eq_images=2, device="cpu",
                   cache_dir=str(cache_dir), deterministic=False)
    record = train.run_one(spec, tmp_path)
    assert record.ok and record.device_kind == "cpu" and record.device.startswith("cpu")
    assert record.nondeterministic_ops is None  # only GPU runs list them
    again = RunStore(tmp_path).current(spec.run_id)
    assert again.spec.deterministic is False and again.spec.precision == "fp32"


# --- the leaderboard never averages across device kinds ------------------------------------------

def test_cpu_and_gpu_runs_never_share_a_row():
    from scaleqbench.bench.report.leaderboard import display_frame, records_frame, summarize

    def rec(seed: int, **facts) -> RunRecord:
        return RunRecord.for_spec(RunSpec("cnn", seed=seed), status="ok", test_acc=0.5,
                                  train_time_s=10.0 * (seed + 1), **facts)

    records = [rec(0, device="cpu (x86_64)"),  # an older record: its name says cpu
               rec(1, device="cpu (x86_64)", device_kind="cpu"),
               rec(2, device="NVIDIA H100 80GB HBM3", device_kind="cuda"),
               rec(3, device="NVIDIA H100 80GB HBM3"),  # an older GPU record
               RunRecord.for_spec(RunSpec("cnn", seed=4), error="cancelled")]  # never ran
    board = summarize(records_frame(records))
    rows = {r.device_kind: r for r in board.itertuples()}
    assert set(rows) == {"cpu", "cuda"}
    assert rows["cpu"].train_time_s == 15.0 and rows["cuda"].train_time_s == 35.0
    assert rows["cpu"].runs == 3 and rows["cpu"].failed == 1  # the cancelled run: its key's
    assert list(display_frame(board)["device"]) == list(board.device_kind)
