"""How a method is drawn in figures: one colour and one marker per method name.

Colours come from Paul Tol's colour-blind safe schemes (vibrant, muted, bright and
light; Tol, "Colour schemes", SRON/EPS/TN/09-002) and each family of methods has a
hue range of its own (:data:`FAMILY_HUES`): the baselines black and greys, the Fourier
methods reds and magentas, the scale-equivariant methods blues, cyans and greens, the
scale-invariant ones oranges and ochres. Within a family every method has its own
colour where the range allows, and every built-in method has a marker of its own
(:data:`BUILTIN_STYLES`), so no two built-in methods are drawn alike.

A method's card may declare a style (``MethodCard(..., style=...)``; the built-in
cards take theirs from :data:`BUILTIN_STYLES`). One that declares none gets a style
derived from its name (:func:`derived_styles`), so plugins and ``timm:<model>``
baselines look the same in every report and every process: a colour of its family's
hue range (:data:`OTHER_HUES` for a family without one) and a marker, picked by a
SHA-1 of the name (Python's ``hash()`` is salted per process), never a pair that a
built-in method uses. Two derived styles may coincide; a report then draws the later
name in its next free style (``bench.report.plots.Palette``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["BUILTIN_STYLES", "DERIVED_SLOTS", "FAMILY_HUES", "MARKERS", "MethodStyle",
           "OKABE_ITO", "OTHER_HUES", "TOL", "derived_styles"]

#: The Okabe–Ito colour-blind safe palette (grey instead of its yellow, unreadable on white);
#: kept for plugins that declare their style with it.
OKABE_ITO: dict[str, str] = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#777777",
}

#: The colours of Paul Tol's schemes used here, by name.
TOL: dict[str, str] = {
    "black": "#000000", "dark grey": "#555555", "grey": "#999999",
    "red": "#CC3311", "magenta": "#EE3377", "purple": "#AA3377", "wine": "#882255",
    "blue": "#0077BB", "cyan": "#33BBEE", "indigo": "#332288", "light cyan": "#88CCEE",
    "green": "#117733", "mint": "#44BB99", "teal": "#009988", "light blue": "#77AADD",
    "orange": "#EE7733", "ochre": "#DDAA33", "brown": "#997700", "salmon": "#EE8866",
    "violet": "#AA4499", "olive": "#999933", "sand": "#DDCC77", "pear": "#BBCC33",
}

#: family -> its hue range, the colours its methods take (declared ones first)
FAMILY_HUES: dict[str, tuple[str, ...]] = {
    "baseline": (TOL["black"], TOL["dark grey"], TOL["grey"]),
    "fourier": (TOL["red"], TOL["magenta"], TOL["purple"], TOL["wine"]),
    "scale-equivariant": (TOL["blue"], TOL["cyan"], TOL["indigo"], TOL["light cyan"],
                          TOL["green"], TOL["mint"], TOL["teal"], TOL["light blue"]),
    "scale-invariant": (TOL["orange"], TOL["ochre"], TOL["brown"], TOL["salmon"]),
}
#: the colours of a family without a hue range of its own (a plugin's)
OTHER_HUES: tuple[str, ...] = (TOL["violet"], TOL["olive"], TOL["sand"], TOL["pear"])

#: matplotlib's filled markers, in the order derived styles take them
MARKERS: tuple[str, ...] = ("o", "s", "^", "v", "<", ">", "D", "d", "p", "h", "H", "8", "*",
                            "P", "X")


@dataclass(frozen=True)
class MethodStyle:
    """A method's colour (any matplotlib colour, e.g. ``"#0072B2"``) and marker (``"^"``)."""

    color: str
    marker: str


#: the built-in methods' styles: a colour of their family's range and a marker of their own
BUILTIN_STYLES: dict[str, MethodStyle] = {
    "cnn": MethodStyle(TOL["black"], "s"),
    "fourier": MethodStyle(TOL["red"], "o"),
    "sesn": MethodStyle(TOL["blue"], "^"),
    "sesn_vector": MethodStyle(TOL["cyan"], "v"),
    "sevf": MethodStyle(TOL["indigo"], "p"),
    "sevf_scalar": MethodStyle(TOL["light cyan"], "h"),
    "dss": MethodStyle(TOL["green"], "D"),
    "dss_vector": MethodStyle(TOL["green"], "P"),  # a second name of dss: its colour
    "dss_scalar": MethodStyle(TOL["mint"], "X"),
    "disco": MethodStyle(TOL["teal"], "*"),
    "ss_cnn": MethodStyle(TOL["orange"], "<"),
    "sicnn": MethodStyle(TOL["ochre"], ">"),
    "si_convnet": MethodStyle(TOL["brown"], "d"),
}

_TAKEN = {(s.color, s.marker) for s in BUILTIN_STYLES.values()}

#: per family (and ``None``: any other), the (colour, marker) slots a derived style takes
#: from: its hue range with every marker, less the pairs of the built-in styles
DERIVED_SLOTS: dict[str | None, tuple[tuple[str, str], ...]] = {
    family: tuple((c, m) for m in MARKERS for c in hues if (c, m) not in _TAKEN)
    for family, hues in [*FAMILY_HUES.items(), (None, OTHER_HUES)]}


def _digest(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)


def derived_styles(name: str, family: str | None = None) -> Iterator[MethodStyle]:
    """Every style a name without a declared one may take, its own first: the built-in style
    of a built-in name, then the slots of its family's hue range (:data:`DERIVED_SLOTS`)
    from one picked by the name.

    A figure that already drew another method in the first one takes the next free one;
    the order depends on the name (and family) only.
    """
    if name in BUILTIN_STYLES:
        yield BUILTIN_STYLES[name]
    slots = DERIVED_SLOTS.get(family if family in FAMILY_HUES else None)
    start = _digest(name)
    for k in range(len(slots)):
        yield MethodStyle(*slots[(start + k) % len(slots)])
