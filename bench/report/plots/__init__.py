"""Figures of a report (matplotlib, no pyplot state): each function returns a Figure or None.

Every method keeps one colour and marker across every figure and the page (:class:`Palette`):
the method registry says which (``methods.style_of``: the style a method declared, else one
derived from its name and family, the same in every report); no two methods of a report are
drawn alike. A variant of a method (``fourier[impl=x]``) keeps its marker, hollow, in a
lighter tint of its colour and another line style. Bands and error bars are the 95 %
intervals of the mean over seeds (the leaderboard's); the accuracy and equivariance vs size
figures also come as small multiples, one panel per method family.

One module per kind of figure: :mod:`.accuracy` (accuracy vs size, learning curves),
:mod:`.equivariance` (errors on log axes that show an exact zero, accuracy vs error) and
:mod:`.cost` (``bench perf``'s training cost), :mod:`.ranks` (the critical-difference
diagram of several comparisons); :mod:`.kit` holds what they share.
"""

from __future__ import annotations

from scaleqbench.bench.report.plots.accuracy import (
    acc_vs_size,
    acc_vs_size_by_family,
    learning_curves,
)
from scaleqbench.bench.report.plots.cost import perf_cost
from scaleqbench.bench.report.plots.equivariance import (
    acc_vs_eq,
    eq_per_layer,
    eq_per_operator,
    eq_vs_size,
    eq_vs_size_by_family,
    pareto_front,
)
from scaleqbench.bench.report.plots.kit import Palette, Style, save_figure
from scaleqbench.bench.report.plots.ranks import cd_diagram

__all__ = ["Palette", "Style", "acc_vs_eq", "acc_vs_size", "acc_vs_size_by_family", "cd_diagram",
           "eq_per_layer", "eq_per_operator", "eq_vs_size", "eq_vs_size_by_family",
           "learning_curves", "pareto_front", "perf_cost", "save_figure"]
