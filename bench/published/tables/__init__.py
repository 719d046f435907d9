"""Data only: one TOML file per published table that ``bench reproduce`` runs (read by
:mod:`scaleqbench.bench.published.table_files`). A package so that setuptools ships the folder."""
