"""Published numbers and tables as data, shipped with the package (read through ``importlib.resources``).

``published.csv``: one row per figure a paper printed (dataset, method, metric, training-set
size), with the paper, table and page and the source it was checked against; the one home of
every published number. ``tables/<name>.toml``: what a published table measured (methods,
protocol, preset, input policy, seeds, columns), run by ``bench reproduce``.
:mod:`.reference` reads the numbers and decides when ours may stand beside them;
:mod:`.table_files` reads the tables.
"""
