"""Published numbers as data, shipped with the package (read through ``importlib.resources``).

``published.csv``: one row per (dataset, method, metric) figure a paper printed, with the
paper, table and protocol it was measured under; ``bench report`` shows it beside ours
only where the protocol is the same.
"""
