"""Figures of a report (matplotlib, no pyplot state): each function returns a Figure or None.

Every method keeps one colour and marker across every figure (:class:`Palette`):
the method registry says which (``methods.style_of``: the style a method
declared, else one derived from its name, the same in every report); options of
a method (``fourier[impl=x]``) keep its colour and marker and change the line style.

One module per kind of figure: :mod:`.accuracy` (accuracy vs size, learning curves),
:mod:`.equivariance` (errors on log axes that show an exact zero, accuracy vs error) and
:mod:`.cost` (``bench perf``'s training cost); :mod:`.kit` holds what they share.
"""

from __future__ import annotations

from scaleqbench.bench.report.plots.accuracy import acc_vs_size, learning_curves
from scaleqbench.bench.report.plots.cost import perf_cost
from scaleqbench.bench.report.plots.equivariance import (
    acc_vs_eq,
    eq_per_layer,
    eq_per_operator,
    eq_vs_size,
    pareto_front,
)
from scaleqbench.bench.report.plots.kit import Palette, Style, save_figure

__all__ = ["Palette", "Style", "acc_vs_eq", "acc_vs_size", "eq_per_layer", "eq_per_operator",
           "eq_vs_size", "learning_curves", "pareto_front", "perf_cost", "save_figure"]
