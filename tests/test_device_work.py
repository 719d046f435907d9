"""What changes on a GPU, checked on the CPU: per-device chunking (on meta tensors), the
training loop's sync-free totals, where a run says it ran, and the leaderboard's device
split.

The same behaviours on a real GPU are tests/test_gpu.py's (``-m gpu``).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from scaleqbench import methods
from scaleqbench.bench.errors import NonFiniteLossError
from scaleqbench.bench.run import train
from scaleqbench.bench.run.devices import StuckDeviceError
from scaleqbench.bench.run.train_steps import EpochTotals, on_device
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.methods.fourier import chunking


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
