"""Shared fixtures: an isolated dataset cache and the embedded datasets built once per session."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from hypothesis import settings

# CI and `make test` draw the same examples every time (derandomize): a property test that
# passes there passes on every machine; `HYPOTHESIS_PROFILE=explore` draws fresh examples
# (and keeps failures in the local example database) for hunting new counterexamples
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "explore"))

# one intra-op thread: tiny tensors, and no spin-waiting threads when the machine is shared
torch.set_num_threads(1)

#: why a ``gpu`` test cannot run here (None: torch sees a CUDA GPU)
NO_GPU = None if torch.cuda.is_available() else (
    "torch sees no CUDA GPU here" + (f" (torch {torch.__version__} without CUDA)"
                                     if torch.version.cuda is None else ""))


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests skip, saying why, where torch sees no CUDA GPU."""
    if NO_GPU is None:
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=NO_GPU))


@pytest.fixture(autouse=True)
def _cpu_unless_gpu_test(request, monkeypatch):
    """Every test but the ``gpu`` ones computes on the CPU, wherever it runs: ``--device
    auto`` (the default of bench run, equivariance and perf) means the CPU in them even on a
    GPU host, so no test silently changes meaning there."""
    if "gpu" not in request.keywords:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sbcache")
    old = os.environ.get("SCALEQBENCH_CACHE")
    os.environ["SCALEQBENCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SCALEQBENCH_CACHE", None)
    else:
        os.environ["SCALEQBENCH_CACHE"] = old


@pytest.fixture(scope="session")
def mnist_res(cache_dir):
    from scaleqbench.datasets import load_or_build

    return load_or_build("mnist-res", cache_dir=cache_dir)[0]


@pytest.fixture(scope="session")
def mnist_scale(cache_dir):
    from scaleqbench.datasets import load_or_build

    return load_or_build("mnist-scale", cache_dir=cache_dir)[0]


@pytest.fixture
def float64():
    """Float64 as the default dtype for one test (equivariance and zoom checks need its
    precision); the previous default comes back after it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def default_dispositions():
    """SIGTERM and SIGHUP as a shell started from a terminal leaves them (default), whatever
    started pytest (``nohup`` ignores SIGHUP); put back after the test."""
    before = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)
