"""Sources, protocol builders, the cache and the bucketed sampler."""

from __future__ import annotations

from pathlib import Path

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


# --- the Fourier paper's own data protocol (datasets/rahman_yeh.py; docs/protocols.md) ------
def stl10_pool_labels() -> np.ndarray:
    """The label layout of STL-10's pooled train (500 per class) and test (800 per class)."""
    return np.concatenate([np.repeat(np.arange(10), 500), np.repeat(np.arange(10), 800)])


def test_the_pooled_stl10_split_is_the_authors_procedure():
    """Their stl_data_module / ScaleSTL: 13,000 pooled, stratified 7,000 / 1,000 / 5,000, each
    split cut into 49 groups of n // 49 (sizes 49..97): 142 / 20 / 102 per size, the rest
    (42 / 20 / 2 images) in no group and never read."""
    from scaleqbench.datasets.rahman_yeh import STL10_POOLED_COUNTS, pooled_parts
    labels = stl10_pool_labels()
    parts = pooled_parts(labels, np.random.default_rng(0))
    assert STL10_POOLED_COUNTS == (7000, 1000, 5000)
    assert [len(idx) for idx, _ in parts] == [142 * 49, 20 * 49, 102 * 49] == [6958, 980, 4998]
    for (idx, sizes), per_size in zip(parts, (142, 20, 102)):
        assert set(np.bincount(sizes, minlength=98)[49:98]) == {per_size}
        assert sizes.min() == 49 and sizes.max() == 97
    used = np.concatenate([idx for idx, _ in parts])
    assert len(set(used.tolist())) == len(used)  # disjoint
    # stratified before the size groups: 700 / 100 / 500 per class drawn, at most the few
    # images left out of the groups missing per class
    for (idx, _), drawn in zip(parts, (700, 100, 500)):
        counts = np.bincount(labels[idx], minlength=10)
        assert counts.max() <= drawn and drawn * 10 - counts.sum() == {700: 42, 100: 20,
                                                                       500: 2}[drawn]
    again = pooled_parts(labels, np.random.default_rng(0))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(parts, again))  # seeded


def test_the_pooled_stl10_protocol_on_a_fake_folder(tmp_path):
    from scaleqbench.datasets.rahman_yeh import build_stl10_pooled
    root = make_fake_stl10(tmp_path, n_train=100, n_test=100)
    ds = build_stl10_pooled("torchvision", 0, root, counts=(98, 49, 49))
    assert (ds.name, ds.protocol, ds.full_size, ds.method_config) == (
        "stl10-res-pooled", "stl10-res", 97, "stl10")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (98, 49, 49)
    assert set(ds.train.size_histogram().values()) == {2}
    assert set(ds.test.size_histogram().values()) == {1}
    for s in (49, 96, 97):
        pos = ds.test.index[s]
        assert torch.allclose(ds.test.images[s], fourier_resize(ds.test.full[pos].double(), s)
                              .float(), atol=1e-5)
    with pytest.raises(SourceError, match="use one of: torchvision"):
        build("stl10-res-pooled")


def test_the_protocols_split_sizes_on_the_full_data():
    """The counts each protocol draws on the full data: the Fourier paper's MNIST split
    (train_mnist.py: training_size 10,000, test_size 50,000, val the rest of 70,000) and its
    STL-10 split (train_stl.py: 7,000 / 5,000, val the rest of 13,000), SESN's MNIST-scale
    (prepare_datasets.py: 10,000 / 2,000 / 50,000) and STL-10's official split."""
    from scaleqbench.datasets import DATASETS
    counts = {name: info.counts for name, info in DATASETS.items()}
    assert counts["mnist-res"] == (10_000, 70_000 - 10_000 - 50_000, 50_000)
    assert counts["stl10-res-pooled"] == (7_000, 13_000 - 7_000 - 5_000, 5_000)
    assert counts["mnist-scale"] == counts["mnist-scale+"] == (10_000, 2_000, 50_000)
    assert counts["stl10"] == counts["stl10-res"] == (4_500, 500, 8_000)
    assert all(c is not None for c in counts.values())


def test_mnist_res_spreads_the_remainder_where_the_authors_leave_it_out():
    """Documented difference (docs/protocols.md): ScaleMNIST gives every size n // 21 images
    and never reads the n mod 21 others (476 of the 10,000 training images per size, 4
    unused); mnist-res divides evenly, the 4 going to 4 sizes (477)."""
    from scaleqbench.datasets.protocols import MNIST_RES_SIZES, _bucket_by_size
    from scaleqbench.datasets.rahman_yeh import size_groups
    n = 10_000
    theirs = size_groups(n, MNIST_RES_SIZES, np.random.default_rng(0))
    assert (theirs == -1).sum() == 4 and set(np.bincount(theirs[theirs >= 0])[8:]) == {476}
    full, labels = torch.zeros(n, 1, 28, 28), torch.zeros(n, dtype=torch.long)
    ours = _bucket_by_size(full, labels, MNIST_RES_SIZES, np.random.default_rng(0).permutation(n))
    assert sorted(ours.size_histogram().values()) == [476] * 17 + [477] * 4


def test_their_resizing_differs_from_fourier_resize_only_in_the_top_ring():
    """Documented difference, against the authors' resample (fixture: tests/fixtures/fourier/
    resample.npz). Their STL-10 images (skip_nyq) hold |k| < s // 2 only: fourier_resize at an
    even size, and at an odd size below the source the ring (s - 1) / 2 dropped; their MNIST
    images (no skip_nyq) are fourier_resize at an odd size and keep the Nyquist row and
    column at an even one. Ours: fourier_resize at every size."""
    ref = np.load(Path(__file__).parent / "fixtures" / "fourier" / "resample.npz")
    x = torch.from_numpy(ref["x"])

    def close(a, b):
        return torch.allclose(torch.as_tensor(a), b, atol=1e-12)

    assert close(ref["skip_6"], fourier_resize(x, 6))
    assert close(ref["skip_12"], fourier_resize(x, 12))
    assert close(ref["skip_13"], fourier_resize(x, 13))  # up by one: the source's band
    assert close(ref["skip_5"], fourier_resize(fourier_resize(x, 3), 5))  # ring 2 dropped
    assert not close(ref["skip_5"], fourier_resize(x, 5))
    assert close(ref["keep_5"], fourier_resize(x, 5))
    assert close(fourier_resize(torch.from_numpy(ref["keep_6"]), 6), fourier_resize(x, 6))
    assert not close(ref["keep_6"], fourier_resize(x, 6))  # plus the Nyquist content


def test_documented_departures_from_the_authors_data_pipelines(mnist_res, mnist_scale, tmp_path):
    """What docs/protocols.md lists as departures, pinned: no train-time augmentation on the
    multi-resolution protocols (theirs: circular shifts on MNIST; crop, flip and cutout on
    STL-10), no input normalisation (images in [0, 1]), MNIST-scale in floats (SESN's
    generator stores 8-bit PNGs) shrunk to a whole number of pixels; their loaders read
    full batches only (MNIST: 128 * (2,380 // 128) = 2,304 of each size's 2,380 test images;
    STL-10: 16 * (102 // 16) = 96 of 102), ours every image."""
    from scaleqbench.datasets.rahman_yeh import build_stl10_pooled
    assert mnist_res.augment is None
    stl = build_stl10_pooled("torchvision", 0, make_fake_stl10(tmp_path, 100, 100), (98, 49, 49))
    assert stl.augment is None
    assert 0.0 <= mnist_res.test.full.min() and mnist_res.test.full.max() <= 1.0
    shrunk = mnist_scale.test.images[28] * 255
    assert not torch.isclose(shrunk, shrunk.round(), atol=1e-4).all()
    assert 128 * ((50_000 // 21) // 128) == 2_304 and 16 * ((5_000 // 49) // 16) == 96
