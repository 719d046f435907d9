"""The dataset cache knows which dataset an entry holds, not only that its bytes are whole."""

from __future__ import annotations

import logging
import shutil

import torch

from scaleqbench.datasets.cache import cache_path, ensure_cached, load_or_build


def _entry(seed: int, cache) -> tuple:
    path = cache_path("mnist-res", "embedded", seed, cache)
    return path, path.with_suffix(".sha256")


def test_an_intact_entry_of_another_dataset_is_never_used(tmp_path, caplog):
    """Seed 1's files copied under seed 0's name (with their matching digest) are named and
    rebuilt; the dataset served is seed 0's."""
    a, _ = load_or_build("mnist-res", seed=0, cache_dir=tmp_path)
    load_or_build("mnist-res", seed=1, cache_dir=tmp_path)
    (p0, d0), (p1, d1) = _entry(0, tmp_path), _entry(1, tmp_path)
    shutil.copyfile(p1, p0)
    shutil.copyfile(d1, d0)
    with caplog.at_level(logging.WARNING):
        b, _ = load_or_build("mnist-res", seed=0, cache_dir=tmp_path)
    assert "holds another dataset" in caplog.text and str(p0) in caplog.text
    assert torch.equal(a.test.full_labels, b.test.full_labels)
    assert all(torch.equal(a.train.images[s], b.train.images[s]) for s in a.train.images)
    # the check without unpickling (before a sweep) sees it too
    shutil.copyfile(p1, p0)
    shutil.copyfile(d1, d0)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert ensure_cached("mnist-res", seed=0, cache_dir=tmp_path) == p0
    assert "holds another dataset" in caplog.text
    assert load_or_build("mnist-res", seed=0, cache_dir=tmp_path)[0].seed == 0


def test_a_forged_stamp_does_not_pass_another_payload_off(tmp_path, caplog):
    """A stamp rewritten with the right key beside another dataset's payload: the key inside
    the payload still disagrees."""
    a, _ = load_or_build("mnist-res", seed=0, cache_dir=tmp_path)
    load_or_build("mnist-res", seed=1, cache_dir=tmp_path)
    (p0, d0), (p1, _) = _entry(0, tmp_path), _entry(1, tmp_path)
    shutil.copyfile(p1, p0)
    import hashlib
    key0 = p0.stem.rsplit("-", 1)[-1]
    d0.write_text(f"{hashlib.sha256(p0.read_bytes()).hexdigest()} {key0}\n")
    with caplog.at_level(logging.WARNING):
        b, _ = load_or_build("mnist-res", seed=0, cache_dir=tmp_path)
    assert "holds another dataset" in caplog.text
    assert torch.equal(a.test.full_labels, b.test.full_labels)


def test_an_entry_of_the_former_format_is_rebuilt_once(tmp_path, caplog):
    """A digest file without a key (written before keys were stored) cannot say which dataset
    it holds: rebuilt, and the new entry is read as it is."""
    load_or_build("mnist-res", seed=0, cache_dir=tmp_path)
    p0, d0 = _entry(0, tmp_path)
    d0.write_text(d0.read_text().split()[0])
    with caplog.at_level(logging.WARNING):
        load_or_build("mnist-res", seed=0, cache_dir=tmp_path)
    assert "holds another dataset" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_or_build("mnist-res", seed=0, cache_dir=tmp_path)
    assert caplog.text == ""
