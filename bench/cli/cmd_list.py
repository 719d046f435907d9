"""``bench list methods|datasets|presets``.
"""

from __future__ import annotations

import argparse

import pandas as pd

from scaleqbench.bench.spec import PRESETS


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from scaleqbench import methods

        rows = []
        for name in methods.list_methods():
            e = methods.get_method(name)
            rows.append({"method": name + (f" (= {e.alias_of})" if e.alias_of else ""),
                         "family": e.family, "paper": e.paper, "year": e.year or "—",
                         "reference": e.reference or "—",
                         "configs": ", ".join(e.configs), "input": e.input,
                         "source": e.source})
        print(pd.DataFrame(rows).to_markdown(index=False))
        print("\nplus timm:<model-name> for any timm model (e.g. timm:resnet18); input: how "
              "the method's paper fed it smaller images (bench run --input published)")
    elif args.what == "datasets":
        from scaleqbench.datasets import DATASETS

        def span(sizes) -> str:
            return f"{min(sizes)}..{max(sizes)}" if len(sizes) > 1 else str(sizes[0])

        rows = [{"dataset": d.name, "sources": ", ".join(d.sources), "sizes": span(d.sizes),
                 "train sizes": span(d.train_sizes) if d.train_sizes else "all",
                 "description": d.description} for d in DATASETS.values()]
        print(pd.DataFrame(rows).to_markdown(index=False))
    else:
        rows = [{"preset": p.name, "config": p.config or "dataset family (mnist / stl10)",
                 "description": p.description} for p in PRESETS.values()]
        print(pd.DataFrame(rows).to_markdown(index=False))
    return 0
