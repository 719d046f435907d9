"""The DISCO basis cache: fit once per configuration, same tensor after, corrupt files refitted."""

from __future__ import annotations

import pytest
import torch

from scaleqbench import methods
from scaleqbench.methods.disco import cache
from scaleqbench.methods.disco.fit import FitOptions, dilated_impulses, fit_proxy_basis

CFG = dict(size=5, effective_size=3, scales=(1.0, 1.41, 2.0))
OPTS = FitOptions(num_images=2, image_size=40)


@pytest.fixture
def count_fits(monkeypatch):
    """Counts the fits the cache runs (the real fit still runs)."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return fit_proxy_basis(*args, **kwargs)

    monkeypatch.setattr(cache, "fit_proxy_basis", counted)
    return calls


def test_second_load_reads_the_same_tensor_without_refitting(tmp_path, count_fits):
    a = cache.load_or_fit(**CFG, options=OPTS, cache_dir=tmp_path)
    b = cache.load_or_fit(**CFG, options=OPTS, cache_dir=tmp_path)
    assert len(count_fits) == 1
    assert torch.equal(a, b) and a.dtype == torch.float64
    files = sorted(p.name for p in (tmp_path / "disco-bases").iterdir())
    assert len(files) == 2 and files[0].endswith(".pt") and files[1].endswith(".sha256")


def test_each_parameter_is_part_of_the_key(tmp_path, count_fits):
    cache.load_or_fit(**CFG, options=OPTS, cache_dir=tmp_path)
    cache.load_or_fit(**CFG, options=FitOptions(num_images=2, image_size=40, seed=1),
                      cache_dir=tmp_path)
    cache.load_or_fit(5, 3, (1.0, 1.42, 2.0), options=OPTS, cache_dir=tmp_path)
    cache.load_or_fit(7, 3, (1.0, 1.41, 2.0), options=OPTS, cache_dir=tmp_path)
    assert len(count_fits) == 4
    keys = {cache.basis_key(5, 3, s, OPTS) for s in [(1.0, 1.41, 2.0), (1.0, 1.41, 2.0000001)]}
    assert len(keys) == 2


def test_a_corrupt_cache_file_is_refitted_not_used(tmp_path, count_fits, caplog):
    good = cache.load_or_fit(**CFG, options=OPTS, cache_dir=tmp_path)
    path = cache.basis_path(**CFG, options=OPTS, cache_dir=tmp_path)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    again = cache.load_or_fit(**CFG, options=OPTS, cache_dir=tmp_path)
    assert len(count_fits) == 2 and "corrupt" in caplog.text
    assert torch.equal(good, again)
    cache.load_or_fit(**CFG, options=OPTS, cache_dir=tmp_path)
    assert len(count_fits) == 2  # the refit was written back intact


def test_no_temporary_files_are_left_and_the_cache_dir_follows_the_environment(
        tmp_path, monkeypatch, count_fits):
    monkeypatch.setenv("SCALEQBENCH_CACHE", str(tmp_path / "env"))
    cache.load_or_fit(**CFG, options=OPTS)
    folder = tmp_path / "env" / "disco-bases"
    assert folder.is_dir() and not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_an_unwritable_cache_still_returns_the_basis(tmp_path, count_fits, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proxy = cache.load_or_fit(**CFG, options=OPTS, cache_dir=blocker)
    assert proxy.shape == (9, 3, 5, 5) and "could not write" in caplog.text


def test_building_models_fits_once_per_configuration(tmp_path, count_fits):
    fit = dict(num_images=2, image_size=40)
    a = methods.create("disco", config="quick", fit=fit, cache_dir=str(tmp_path))
    b = methods.create("disco", config="quick", fit=fit, cache_dir=str(tmp_path))
    assert len(count_fits) == 1
    assert torch.equal(a.conv1.kernel.basis, b.conv1.kernel.basis)
    # a given proxy basis (e.g. the authors') is used as is: no fit
    given = torch.stack([dilated_impulses(5, 3, 1), dilated_impulses(5, 3, 1),
                         dilated_impulses(5, 3, 2)], 1)
    methods.create("disco", config="quick", proxy=given, cache_dir=str(tmp_path / "other"))
    assert len(count_fits) == 1 and not (tmp_path / "other").exists()
