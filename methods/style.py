"""How a method is drawn in figures: one colour and one marker per method name.

A method declares its style on its card (``MethodCard(..., style=...)``);
one that does not gets a style derived from its name, so plugins and
``timm:<model>`` baselines look the same in every report and every process:

* a family with a house colour (:data:`FAMILY_COLORS`) gives its colour, and the
  name picks a marker among :data:`DERIVED_MARKERS`;
* any other name picks a (colour, marker) slot of :data:`DERIVED_SLOTS`.

The pick is a SHA-1 of the name (Python's ``hash()`` is salted per process).
The built-in methods declare styles with :data:`DECLARED_MARKERS`, derived
styles use the other markers, and family colours stay out of the derived
slots, so a derived style never looks like a built-in one or like another
family's. Two derived styles may coincide (1 in 56 for two names); a report
then draws the later name in its next free style (``bench.report.plots.Palette``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["DECLARED_MARKERS", "DERIVED_MARKERS", "DERIVED_SLOTS", "FAMILY_COLORS", "MethodStyle",
           "OKABE_ITO", "derived_styles"]

#: The Okabe–Ito colour-blind safe palette (grey instead of its yellow, unreadable on white).
OKABE_ITO: dict[str, str] = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#777777",
}

#: markers of the styles the built-in methods declare (matplotlib marker codes)
DECLARED_MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "D", "P", "X")
#: markers that derived styles choose from (none of the declared ones)
DERIVED_MARKERS: tuple[str, ...] = ("<", ">", "p", "h", "*", "d", "H", "8")

#: families whose methods share a colour when they declare no style of their own
FAMILY_COLORS: dict[str, str] = {
    # `fourier` registers without a style (methods/fourier/): its family names its colour
    "fourier": OKABE_ITO["vermillion"],
}

#: (colour, marker) slots of names with neither a declared style nor a family colour
DERIVED_SLOTS: tuple[tuple[str, str], ...] = tuple(
    (color, marker) for marker in DERIVED_MARKERS for color in OKABE_ITO.values()
    if color not in FAMILY_COLORS.values())


@dataclass(frozen=True)
class MethodStyle:
    """A method's colour (any matplotlib colour, e.g. ``"#0072B2"``) and marker (``"^"``)."""

    color: str
    marker: str


def _digest(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)


def derived_styles(name: str, family: str | None = None) -> Iterator[MethodStyle]:
    """Every style a name without a declared one may take, its own first.

    A figure that already drew another method in the first one takes the next
    free one; the order depends on the name (and family) only.
    """
    start = _digest(name)
    if family in FAMILY_COLORS:
        color = FAMILY_COLORS[family]
        for k in range(len(DERIVED_MARKERS)):
            yield MethodStyle(color, DERIVED_MARKERS[(start + k) % len(DERIVED_MARKERS)])
        return
    for k in range(len(DERIVED_SLOTS)):
        yield MethodStyle(*DERIVED_SLOTS[(start + k) % len(DERIVED_SLOTS)])
