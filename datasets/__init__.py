"""Scaled image-classification datasets: sources, scaling operators, protocols, cache.

``datasets`` imports neither ``bench`` nor ``methods`` (docs/architecture.md).
"""

from __future__ import annotations

from scaleqbench.datasets.cache import cache_path, default_cache_dir, ensure_cached, load_or_build
from scaleqbench.datasets.protocols import (
    DATASETS,
    UnknownDatasetError,
    build,
    check_buildable,
    dataset_info,
    list_datasets,
)
from scaleqbench.datasets.scaling import canvas_rescale, fourier_resize
from scaleqbench.datasets.sources import SOURCES, SourceError
from scaleqbench.datasets.splits import ScaledDataset, Split

__all__ = [
    "DATASETS", "SOURCES", "ScaledDataset", "SourceError", "Split", "UnknownDatasetError",
    "build", "cache_path", "canvas_rescale", "check_buildable", "default_cache_dir",
    "dataset_info",
    "ensure_cached", "fourier_resize", "list_datasets", "load_or_build",
]
