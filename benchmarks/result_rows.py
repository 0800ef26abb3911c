"""Benchmark results kept across invocations: each run is one row of a CSV under ``benchmarks/results``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: Seeds from here on are selection seeds: a variant is chosen on them, never judged on them (reported: 0-2).
SELECTION_SEED = 10


def merge_rows(new: pd.DataFrame, path: Path, keys: list[str]) -> pd.DataFrame:
    """``new`` merged into the rows already in ``path`` (if any): earlier rows of other keys are kept (other cells,
    other sessions), a re-measured run replaces its old row; sorted by ``keys``. The caller writes the result."""
    if not path.exists():
        return new.sort_values(keys).reset_index(drop=True)
    old = pd.read_csv(path)
    return pd.concat([old, new]).drop_duplicates(keys, keep="last").sort_values(keys).reset_index(drop=True)
