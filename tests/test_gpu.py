"""On a CUDA GPU (``-m gpu``; skipped, saying why, where torch sees none): the GPU computes
what the CPU computes, the Fourier network stays exact, runs resume across devices and
repeat bit for bit when deterministic.

* parity: every method at sizes 8, 15 and 28 with TF32 off, CPU against CUDA, on the same
  weights: logits, every feature map, and one training step's gradients;
* ``fourier``: the ``ideal`` equivariance error <= 1e-12 in float64 on CUDA, and float64
  ``gradcheck`` of its autograd functions there;
* the ``lie`` operator on CUDA equals the CPU's; ``bench equivariance --checkpoint`` on both;
* a per-epoch state written by a CPU run resumes on CUDA; ``run_one`` twice with
  ``deterministic`` gives the same record; a bf16 run trains and is recorded as one;
* a local GPU sweep runs each run in a fresh process; a device-side assert is recognised
  as the error that leaves a process without its GPU.

``make test-gpu`` runs these with the GPU benchmarks (tests/gpu/gpu_checks.py).
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch.local import LocalLauncher
from scaleqbench.bench.run import train
from scaleqbench.bench.run.devices import numerics
from scaleqbench.bench.run.equivariance import check_equivariance
from scaleqbench.bench.run.metrics import equivariance_errors
from scaleqbench.bench.run.recipes import loss_for
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.checkpoint import last_checkpoint_path
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.datasets.scaling import fourier_resize

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")
SIZES = (8, 15, 28)
METHODS = [e if isinstance(e, str) else e.name for e in methods.list_methods()]
#: what a record holds that differs between two identical runs: when and how long
TIMING = {"started_at", "finished_at", "wall_time_s", "train_time_s", "train_img_per_s",
          "infer_img_per_s", "peak_mem_mb", "path", "checkpoint", "hostname"}


@pytest.fixture(autouse=True)
def full_precision():
    """TF32 off and deterministic kernels, as a default (fp32) run computes."""
    with numerics("fp32", deterministic=True):
        yield


def images(b: int, n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, 1, 2 * n, 2 * n, generator=g, dtype=torch.float64)
    return fourier_resize(noise, n).to(dtype)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).norm() / (a.norm() + 1e-30)).item()


def no_dropout(model: nn.Module) -> nn.Module:
    """Dropout draws from each device's own generator: off, so the two steps compare."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0
    return model


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in epoch.items() if k != "time_s"} for epoch in history]


def tiny(method: str, cache_dir, **fields) -> RunSpec:
    """A small run on the session's dataset cache (built once, conftest)."""
    return RunSpec(method, epochs=fields.pop("epochs", 2), limit_train=256, limit_eval=128,
                   eq_images=16, cache_dir=str(cache_dir), experiment="gpu", **fields)


@pytest.mark.parametrize("name", METHODS)
def test_cpu_and_cuda_compute_the_same(name):
    torch.manual_seed(0)
    cpu = no_dropout(methods.create(name, in_channels=1, num_classes=10, config="mnist"))
    gpu = copy.deepcopy(cpu).to(CUDA)
    loss_fn = loss_for(name, "mnist")
    for n in SIZES:
        x, y = images(4, n, seed=n), torch.arange(4) % 10
        cpu.eval(), gpu.eval()
        with torch.no_grad():
            assert rel(cpu(x), gpu(x.to(CUDA))) < 1e-4, (name, n, "logits")
            fc, fg = cpu.features(x), gpu.features(x.to(CUDA))
            assert fc.keys() == fg.keys()
            for layer in fc:
                assert rel(fc[layer], fg[layer]) < 1e-4, (name, n, layer)
        cpu.train(), gpu.train()
        cpu.zero_grad(), gpu.zero_grad()
        loss_fn(cpu, x, y)[0].backward()
        loss_fn(gpu, x.to(CUDA), y.to(CUDA))[0].backward()
        for (param, p), q in zip(cpu.named_parameters(), gpu.parameters()):
            if p.grad is not None and p.grad.norm() > 0:
                assert rel(p.grad, q.grad) < 1e-3, (name, n, param)


def test_fourier_is_exact_in_float64_on_cuda():
    torch.manual_seed(0)
    model = methods.create("fourier", in_channels=1, config="mnist").double().to(CUDA).eval()
    x = images(2, 28, seed=1, dtype=torch.float64).to(CUDA)
    errs = equivariance_errors(model.features, None, x, [8, 9, 15, 16, 21, 27])  # every map
    worst = max(v for per_size in errs.values() for v in per_size.values())
    assert worst <= 1e-12, errs


@pytest.mark.parametrize("act, pool", [("tanh", 1), ("tanh", 2), ("gelu", 3)])
def test_fourier_autograd_functions_pass_gradcheck_on_cuda(act, pool):
    from scaleqbench.methods.fourier.basis import band_mean_square
    from scaleqbench.methods.fourier.moments import SpectrumMoments
    from scaleqbench.methods.fourier.nonlinearity import RingNonlinearity
    from scaleqbench.methods.fourier.spectral import SpectralConv2d
    from scaleqbench.methods.fourier.spectral_mix import SpectralMix

    torch.manual_seed(0)
    layer = RingNonlinearity(2, 6, 12, pool=pool, act=act).double().to(CUDA)
    x = images(1, 12, seed=pool, dtype=torch.float64).repeat(1, 2, 1, 1).to(CUDA)
    assert torch.autograd.gradcheck(layer, (x.requires_grad_(),))
    conv = SpectralConv2d(2, 3, 9, 3).double().to(CUDA)
    spec = torch.randn(7, 7, 2, 2, dtype=torch.float64, device=CUDA, requires_grad=True)
    w = conv.multiplier(3, torch.complex128).detach().requires_grad_()
    bias = torch.randn(3, dtype=torch.float64, device=CUDA, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: SpectralMix.apply(*a, None, 1),
                                    (spec, w, conv.pointwise, bias))
    q = band_mean_square([0, 2, 3], 7, torch.float64, CUDA)
    flat = torch.randn(7, 7, 5, dtype=torch.float64, device=CUDA, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: SpectrumMoments.apply(s, q, None, 60), (flat,))


@pytest.mark.parametrize("name", ["cnn", "fourier", "sesn"])
def test_the_lie_operator_on_cuda_equals_the_cpus(name):
    torch.manual_seed(0)
    model = methods.create(name, in_channels=1, num_classes=10, config="quick")
    x = images(8, 28, seed=2)
    on_cpu = check_equivariance(copy.deepcopy(model), x, "lie", [14, 21])
    on_gpu = check_equivariance(copy.deepcopy(model).to(CUDA), x, "lie", [14, 21], device=CUDA)
    assert on_cpu.per_layer.keys() == on_gpu.per_layer.keys()
    assert on_gpu.summary == pytest.approx(on_cpu.summary, rel=1e-3, abs=1e-12)


def test_a_cpu_state_resumes_on_cuda(tmp_path, cache_dir, monkeypatch):
    """A run interrupted on the CPU after epoch 1 resumes on a GPU from its per-epoch state
    (the CPU's RNG states, no CUDA one), and its first epoch is the CPU's."""
    spec = tiny("cnn", cache_dir, device="cpu")
    real = train.predict
    calls = []

    def preempt_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "predict", preempt_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train.run_one(spec, tmp_path)
    monkeypatch.setattr(train, "predict", real)
    assert last_checkpoint_path(tmp_path, spec.run_id).exists()
    resumed = train.run_one(tiny("cnn", cache_dir, device=CUDA.type), tmp_path)
    assert resumed.ok and resumed.resumed_from_epoch == 1 and resumed.device_kind == CUDA.type
    assert [h["epoch"] for h in resumed.history] == [1, 2]


@pytest.mark.parametrize("name", ["cnn", "fourier", "sevf"])
def test_deterministic_runs_repeat_bit_for_bit(tmp_path, cache_dir, name):
    a = train.run_one(tiny(name, cache_dir, device=CUDA.type), tmp_path / "a")
    b = train.run_one(tiny(name, cache_dir, device=CUDA.type), tmp_path / "b")
    assert a.ok and b.ok and a.spec.deterministic
    da, db = a.to_dict(), b.to_dict()
    for key in da.keys() - TIMING:
        if key == "history":
            assert _untimed(da[key]) == _untimed(db[key])
        else:
            assert da[key] == db[key], key
    assert isinstance(a.nondeterministic_ops, list)
    if name == "sevf":  # bilinear resampling has no deterministic CUDA backward: named
        assert any("backward" in op for op in a.nondeterministic_ops), a.nondeterministic_ops


def test_a_bf16_run_trains_and_says_so(tmp_path, cache_dir):
    rec = train.run_one(tiny("cnn", cache_dir, device=CUDA.type, precision="bf16"), tmp_path)
    assert rec.ok and rec.spec.precision == "bf16" and rec.device_kind == CUDA.type
    assert all(h["train_loss"] == h["train_loss"] for h in rec.history)  # no NaN


def test_bench_equivariance_of_a_checkpoint_on_both_devices(tmp_path, cache_dir, capsys):
    rec = train.run_one(tiny("cnn", cache_dir, device=CUDA.type, epochs=1), tmp_path)
    numbers = {}
    for device in ("cpu", CUDA.type):
        assert cli.main(["equivariance", "--checkpoint", rec.checkpoint, "--images", "16",
                         "--device", device, "--cache-dir", str(cache_dir)]) == 0
        rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| cnn")]
        numbers[device] = [float(v) for ln in rows
                           for v in re.findall(r"-?\d+\.\d+e[-+]\d+", ln)]
    assert numbers["cpu"] and len(numbers["cpu"]) == len(numbers[CUDA.type])
    assert numbers[CUDA.type] == pytest.approx(numbers["cpu"], rel=1e-2, abs=1e-12)


def test_a_local_gpu_sweep_runs_each_run_in_its_own_process(tmp_path, cache_dir):
    specs = [tiny("cnn", cache_dir, device=CUDA.type, seed=s, epochs=1) for s in (0, 1)]
    local = LocalLauncher(progress=False)
    assert all(local._isolated(s) for s in specs)
    final = local.follow(local.submit(specs, tmp_path), tmp_path)
    assert set(final.values()) == {"done"}
    assert all(RunStore(tmp_path).current(s.run_id).device_kind == CUDA.type for s in specs)


def test_a_device_side_assert_is_known_as_sticky():
    """Recognised from the message torch gives, and indeed every later CUDA call fails."""
    code = ("import torch\n"
            "from scaleqbench.bench.run.devices import is_sticky_cuda_error\n"
            "x = torch.zeros(4, device='cuda')\n"
            "try:\n"
            "    x[torch.tensor([9], device='cuda')] = 1.0\n"
            "    torch.cuda.synchronize()\n"
            "except RuntimeError as exc:\n"
            "    print('sticky', is_sticky_cuda_error(exc))\n"
            "try:\n"
            "    torch.ones(2, device='cuda').sum().item()\n"
            "    print('later call ok')\n"
            "except RuntimeError:\n"
            "    print('later call fails')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout
    assert "sticky True" in out and "later call fails" in out, out


def test_dss_dilated_convolution_on_cuda_equals_the_cpus_rewrite():
    from scaleqbench.methods.dss.layers import dilated_conv2d

    x, w = torch.randn(2, 3, 28, 28), torch.randn(4, 3, 5, 5)
    for d in (2, 4, 8):
        torch.testing.assert_close(dilated_conv2d(x.to(CUDA), w.to(CUDA), None, d).cpu(),
                                   dilated_conv2d(x, w, None, d), rtol=1e-4, atol=1e-4)
