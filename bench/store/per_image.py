"""Per-test-image outcomes of a run, packed for its record (``RunRecord.per_image``).

A run records, for each test image in the test split's order, whether it was
classified right (``test_correct``) and whether its prediction was the same in every
scale-consistency view (``consistent``; for the images of the consistency subset only,
in test order, where the protocol measures consistency on fewer images), and the same
with recalibrated BatchNorm statistics where the run has them (``*_recal``). The leaderboard's one-seed intervals
and tests (a bootstrap and McNemar's test over test images) read them.

Each is a bit string packed as ``"<n>:<base64>"``: ``n`` bits, image ``i`` in bit
``7 - i % 8`` of byte ``i // 8`` (the first image in the high bit), the bits after the
last image zero; 1,500 images take 256 characters.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

__all__ = ["PER_IMAGE_KEYS", "check_per_image", "pack_bits", "unpack_bits"]

#: what a record's ``per_image`` may hold
PER_IMAGE_KEYS = ("test_correct", "test_correct_recal", "consistent", "consistent_recal")


def pack_bits(bits: Iterable[Any]) -> str:
    """``bits`` (anything with a truth value per image) as ``"<n>:<base64>"``."""
    flags = [bool(b) for b in bits]
    buf = bytearray((len(flags) + 7) // 8)
    for i, b in enumerate(flags):
        if b:
            buf[i >> 3] |= 0x80 >> (i & 7)
    return f"{len(flags)}:{base64.b64encode(bytes(buf)).decode('ascii')}"


def unpack_bits(text: str) -> list[bool]:
    """The bits of :func:`pack_bits`' string; ValueError naming what is wrong otherwise."""
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"{str(text)[:40]!r} is not '<count>:<base64>'")
    count, payload = text.split(":", 1)
    if not count.isdigit():
        raise ValueError(f"{count[:20]!r} is not a count of images")
    n = int(count)
    try:
        buf = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its bits are not base64") from None
    if len(buf) != (n + 7) // 8:
        raise ValueError(f"{len(buf)} bytes hold no {n} bits")
    if n % 8 and buf[-1] & (0xFF >> (n % 8)):
        raise ValueError("bits set after the last image")
    return [bool(buf[i >> 3] & (0x80 >> (i & 7))) for i in range(n)]


def check_per_image(value: Any) -> None:
    """ValueError unless ``value`` is a record's ``per_image``: known keys, packed bits, one
    image count for the test outcomes and one for the consistency outcomes, no more of
    these than of those."""
    if not isinstance(value, dict):
        raise ValueError(f"is {type(value).__name__}, expected an object")
    unknown = sorted(set(value) - set(PER_IMAGE_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    counts: dict[str, set[int]] = {"test_correct": set(), "consistent": set()}
    for key, packed in value.items():
        try:
            counts[key.removesuffix("_recal")].add(len(unpack_bits(packed)))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    for kind, found in counts.items():
        if len(found) > 1:
            raise ValueError(f"{kind} image counts differ "
                             f"({', '.join(map(str, sorted(found)))})")
    tested, consistent = counts["test_correct"], counts["consistent"]
    if tested and consistent and max(consistent) > max(tested):
        raise ValueError(f"{max(consistent)} consistency outcomes for {max(tested)} test images")
