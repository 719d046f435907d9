"""Records and published values for the ``bench reproduce`` tests."""

from __future__ import annotations

import pandas as pd

from scaleqbench.bench.store.record import RunRecord


def _record(spec, acc: float | None, eq: float = 0.1, status: str = "ok") -> RunRecord:
    rec = RunRecord.for_spec(spec, versions={}, status=status, device="cpu")
    if status == "ok":
        rec.set(test_acc=acc, scale_consistency=acc - 0.1, eq_err=eq, params=1)
    return rec


def _published(value: float, std: float, dataset: str = "mnist-res", method: str = "cnn",
               metric: str = "test_acc") -> pd.DataFrame:
    return pd.DataFrame([{"dataset": dataset, "method": method, "paper_method": method.upper(),
                          "paper_dataset": "MNIST-scale", "metric": metric, "value": value,
                          "std": std, "train_images": None, "table": "Table 9", "page": "7",
                          "source": "A paper", "verified_from": "its PDF"}])
