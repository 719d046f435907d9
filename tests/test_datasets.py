"""Sources, protocol builders, the cache and the bucketed sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scaleqbench.datasets import SourceError, build, cache_path, ensure_cached, load_or_build
from scaleqbench.datasets.sampler import SizeBucketSampler, iterate_batches
from scaleqbench.datasets.scaling import fourier_resize
from scaleqbench.datasets.sources import load_embedded_mnist, load_stl10
from scaleqbench.datasets.splits import stratified_split


def test_embedded_mnist_is_the_real_digits():
    x, y = load_embedded_mnist()
    assert x.shape == (5000, 1, 28, 28) and y.shape == (5000,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(y.tolist()) == set(range(10))
    # real digits: ink in the centre, empty borders
    assert x[:, :, 10:18, 10:18].mean() > 5 * x[:, :, :3, :].mean()


def test_mnist_res_splits_and_sizes(mnist_res):
    ds = mnist_res
    assert (len(ds.train), len(ds.val), len(ds.test)) == (3000, 500, 1500)
    assert ds.sizes == tuple(range(8, 29))
    for split in (ds.train, ds.val, ds.test):
        hist = split.size_histogram()
        assert set(hist) == set(range(8, 29))
        assert max(hist.values()) - min(hist.values()) <= 1  # evenly divided
        for s, imgs in split.images.items():
            assert imgs.shape[1:] == (1, s, s)
            # each bucket image is exactly fourier_resize of its full-size original
            pos = split.index[s][:3]
            assert torch.allclose(imgs[:3], fourier_resize(split.full[pos].double(), s).float(),
                                  atol=1e-6)
            assert torch.equal(split.labels[s], split.full_labels[split.index[s]])


def test_splits_are_disjoint_and_stratified(mnist_res):
    ds = mnist_res
    seen = set()
    for split in (ds.train, ds.val, ds.test):
        keys = {hash(img.numpy().tobytes()) for img in split.full}
        assert not keys & seen
        seen |= keys
        frac = torch.bincount(split.full_labels, minlength=10).double() / len(split)
        assert (frac - 0.1).abs().max() < 0.03


def test_stratified_split_exact_counts():
    labels = np.repeat(np.arange(10), [50, 60, 40, 55, 45, 50, 52, 48, 50, 50])
    parts = stratified_split(labels, (300, 50, 150), np.random.default_rng(0))
    assert [len(p) for p in parts] == [300, 50, 150]
    assert len(set(np.concatenate(parts))) == 500


def test_mnist_scale_factors_and_realizations(mnist_scale, cache_dir):
    ds = mnist_scale
    assert ds.sizes == (28,) and ds.scale_kind == "factor"
    f = ds.test.scale
    assert 0.3 <= f.min() and f.max() <= 1.0 and f.std() > 0.15
    other = load_or_build("mnist-scale", seed=1, cache_dir=cache_dir)[0]
    assert not torch.equal(other.test.scale, ds.test.scale)  # another realization


def test_cache_is_reused_and_a_corrupt_file_is_rebuilt(tmp_path, caplog):
    ds, path = load_or_build("mnist-res", seed=3, cache_dir=tmp_path)
    assert path.exists() and path == cache_path("mnist-res", "embedded", 3, tmp_path)
    mtime = path.stat().st_mtime_ns
    again, _ = load_or_build("mnist-res", seed=3, cache_dir=tmp_path)
    assert path.stat().st_mtime_ns == mtime
    assert torch.equal(again.train.full, ds.train.full)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with caplog.at_level("WARNING"):
        rebuilt, _ = load_or_build("mnist-res", seed=3, cache_dir=tmp_path)
    assert "corrupt" in caplog.text
    assert torch.equal(rebuilt.test.full, ds.test.full)
    assert path.read_bytes() == data


def test_ensure_cached_builds_once_checks_without_loading_and_rebuilds_corrupt(tmp_path,
                                                                                monkeypatch):
    path = ensure_cached("mnist-res", seed=4, cache_dir=tmp_path)
    assert path == cache_path("mnist-res", "embedded", 4, tmp_path) and path.is_file()
    data = path.read_bytes()
    import scaleqbench.datasets.cache as cache

    def no_load(*a, **k):
        raise AssertionError("an intact cache was unpickled")

    monkeypatch.setattr(cache.torch, "load", no_load)
    assert ensure_cached("mnist-res", seed=4, cache_dir=tmp_path) == path
    monkeypatch.undo()
    path.write_bytes(data[:100])  # truncated: rebuilt, to the same bytes
    assert ensure_cached("mnist-res", seed=4, cache_dir=tmp_path) == path
    assert path.read_bytes() == data
    with pytest.raises(SourceError, match="--data-root"):
        ensure_cached("mnist-res", source="torchvision", cache_dir=tmp_path)


def test_torchvision_source_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="train-images-idx3-ubyte"):
        from scaleqbench.datasets.sources import load_mnist
        load_mnist(tmp_path, download=False)
    with pytest.raises(SourceError, match="--data-root"):
        build("mnist-res", source="torchvision", data_root=None)


def make_fake_stl10(root, n_train=40, n_test=30, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        np.tile(np.arange(1, 11, dtype=np.uint8), n // 10 + 1)[:n].tofile(folder / f"{split}_y.bin")
    return root


def test_stl10_protocols_on_a_fake_folder(tmp_path):
    root = make_fake_stl10(tmp_path)
    x, y = load_stl10(root, "train")
    assert x.shape == (40, 3, 96, 96) and y.min() == 0 and y.max() == 9
    ds = build("stl10", source="torchvision", data_root=root)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (36, 4, 30) and ds.augment == "stl"
    res = build("stl10-res", source="torchvision", data_root=root)
    assert res.full_size == 97 and min(res.test.sizes) >= 49 and max(res.test.sizes) <= 97
    (root / "stl10_binary" / "test_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(SourceError, match="truncated or corrupt"):
        load_stl10(root, "test")


def test_bucketed_batches_hold_one_size(mnist_res):
    g = torch.Generator().manual_seed(0)
    seen = []
    for x, y, pos in iterate_batches(mnist_res.val, 16, shuffle=True, generator=g):
        assert x.shape[-1] == x.shape[-2] and x.shape[0] == y.shape[0] <= 16
        assert torch.equal(mnist_res.val.full_labels[pos], y)
        seen.extend(pos.tolist())
    assert sorted(seen) == list(range(len(mnist_res.val)))
    sampler = SizeBucketSampler(mnist_res.val, 16)
    assert len(sampler) == len(list(sampler))
    order1 = [r.tolist() for _, r in SizeBucketSampler(mnist_res.val, 16, True,
                                                        torch.Generator().manual_seed(1))]
    order2 = [r.tolist() for _, r in SizeBucketSampler(mnist_res.val, 16, True,
                                                        torch.Generator().manual_seed(1))]
    assert order1 == order2
