""""Did you mean ...?": the closest known name to a mistyped one, for one-line error messages.

The registry (unknown method names) and the ``timm:`` prefix (unknown timm models)
both phrase their hint with :func:`did_you_mean`, so the wording and the
similarity rule are the same wherever a name is looked up.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

__all__ = ["closest", "did_you_mean"]

#: difflib's ratio a candidate needs to be offered (its own default)
CUTOFF = 0.6


def closest(name: str, candidates: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The candidate most similar to ``name`` (difflib's ratio >= ``cutoff``), or None."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name: str, candidates: Iterable[str], *, cutoff: float = CUTOFF,
                 spell: Callable[[str], str] = str) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, ``""`` when none is close.

    ``spell`` writes the candidate as the user would type it (e.g. with a prefix:
    ``lambda m: f"timm:{m}"``), so the hint can be pasted back as it is.
    """
    match = closest(name, candidates, cutoff)
    return f" (did you mean {spell(match)!r}?)" if match is not None else ""
