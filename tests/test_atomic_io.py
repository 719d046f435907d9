"""Atomic writes: the old file or the new one, never a part, and no temporary file left behind
(a full disk, an exception while serialising, Ctrl-C)."""

from __future__ import annotations

import errno
import io
import os
import stat

import pytest
import torch

from scaleqbench.bench.store import atomic_io
from scaleqbench.bench.store.atomic_io import (
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
)

OLD = "the old record\n"
NEW = "x" * 100_000  # large enough that a partial write is visibly partial


def _only(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class _FullDisk(io.FileIO):
    """A file on a disk that fills up: half of the first write lands, then ENOSPC."""

    def write(self, b) -> int:
        data = bytes(b)
        super().write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture()
def full_disk(monkeypatch):
    """Every file atomic_io opens from now on writes half of its first chunk, then ENOSPC."""
    opened = []

    def open_on_full_disk(fd, mode="r", *args, **kwargs):
        assert mode == "wb"
        opened.append(_FullDisk(fd, "wb"))
        return opened[-1]

    monkeypatch.setattr(atomic_io, "open", open_on_full_disk, raising=False)
    return opened


@pytest.mark.parametrize("write", [
    lambda p: atomic_write_text(p, NEW),
    lambda p: atomic_write_bytes(p, NEW.encode()),
    lambda p: atomic_torch_save({"w": torch.zeros(10_000)}, p),
], ids=["text", "bytes", "torch_save"])
def test_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, full_disk, write):
    target = tmp_path / "record.json"
    target.write_text(OLD)
    with pytest.raises(Exception) as info:
        write(target)
    # torch.save may wrap the OSError of the file it writes to; the text writers do not
    assert "No space left on device" in str(info.value) or (
        isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC)
    assert full_disk, "the write did not go through atomic_io's open"
    assert target.read_text() == OLD
    assert _only(tmp_path) == ["record.json"]


def test_full_disk_on_a_new_file_leaves_nothing(tmp_path, full_disk):
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "sub" / "new.json", NEW)
    assert info.value.errno == errno.ENOSPC
    assert _only(tmp_path / "sub") == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "fsync: no space"),
                                     KeyboardInterrupt()], ids=["fsync-enospc", "ctrl-c"])
def test_failure_after_the_data_is_written_leaves_the_old_file(tmp_path, monkeypatch, failure):
    target = tmp_path / "board.md"
    target.write_text(OLD)

    def fail(fd):
        raise failure

    monkeypatch.setattr(atomic_io.os, "fsync", fail)
    with pytest.raises(type(failure)):
        atomic_write_text(target, NEW)
    assert target.read_text() == OLD and _only(tmp_path) == ["board.md"]


def test_the_target_is_never_half_written(tmp_path):
    target = tmp_path / "perf.json"
    target.write_text(OLD)
    seen = []

    def write_slowly(fh):
        for i in range(10):
            fh.write(NEW[i * 10_000:(i + 1) * 10_000].encode())
            fh.flush()
            seen.append(target.read_text())  # what a reader sees meanwhile

    atomic_write(target, write_slowly)
    assert seen == [OLD] * 10
    assert target.read_text() == NEW and _only(tmp_path) == ["perf.json"]


def test_an_exception_while_serialising_leaves_the_old_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic_torch_save({"w": torch.ones(3)}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_torch_save({"w": torch.zeros(3), "bad": Unpicklable()}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(3))
    assert _only(tmp_path) == ["ckpt.pt"]


def test_written_files_have_the_mode_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "atomic.txt") == mode(plain)


def test_round_trips_and_creates_parent_folders(tmp_path):
    assert atomic_write_text(tmp_path / "a" / "t.md", "± ok\n").read_text("utf-8") == "± ok\n"
    assert atomic_write_bytes(tmp_path / "b" / "x.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    path = atomic_torch_save({"t": torch.arange(4)}, tmp_path / "c" / "m.pt")
    assert torch.equal(torch.load(path, weights_only=True)["t"], torch.arange(4))
