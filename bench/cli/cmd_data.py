"""``bench data build DATASET``: materialise a dataset in the cache and describe it.
"""

from __future__ import annotations

import argparse

import torch

from scaleqbench.bench.cli.common import load_dataset
from scaleqbench.bench.cli.options import note_unused_options
from scaleqbench.bench.cli.validate import check_seed
from scaleqbench.datasets import check_buildable


def cmd_data(args: argparse.Namespace) -> int:
    check_seed(args.seed)
    check_buildable(args.dataset, args.source, args.data_root)  # refused: nothing written
    note_unused_options(args)
    ds, path, secs = load_dataset(args.dataset, args, args.seed)
    print(f"dataset {ds.name} (protocol {ds.protocol}, source {ds.source}, seed {ds.seed}) "
          f"ready in {secs:.1f} s")
    print(f"cache: {path or '(not cached)'}")
    print(f"channels {ds.in_channels}, classes {ds.num_classes}, full size {ds.full_size}, "
          f"augmentation {ds.augment or 'none'}")
    for split_name in ("train", "val", "test"):
        split = getattr(ds, split_name)
        print(f"{split_name:5s} {len(split):6d} images")
    if ds.scale_kind == "size":
        hist = ds.train.size_histogram()
        print("train images per size: " + ", ".join(f"{s}:{n}" for s, n in hist.items()))
    else:
        counts = torch.histc(ds.train.scale, bins=7, min=0.3, max=1.0).long().tolist()
        edges = [0.3 + 0.1 * i for i in range(8)]
        print("train images per shrink factor: " + ", ".join(
            f"[{a:.1f},{b:.1f}):{n}" for a, b, n in zip(edges, edges[1:], counts)))
    return 0
