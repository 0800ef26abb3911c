"""Plots of a run's ``metrics.csv``, written next to it.

One panel per accuracy-like metric, against rounds for federated runs and against queries for
distillation runs (the x-axis users compare methods by); per-client rows are averaged per x value.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from fedkd.errors import DataError  # noqa: E402
from fedkd.runs import read_metrics  # noqa: E402

PLOTTED = ("test_acc", "fidelity", "label_acc", "train_loss", "fid_like")


def plot_run(run_dir: str | Path) -> Path:
    """Write ``metrics.png`` beside ``metrics.csv`` and return its path."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "metrics.csv"
    if not csv_path.is_file():
        raise DataError(f"{str(run_dir)!r} has no metrics.csv; pass a run directory written by `fedkd run`")
    df = read_metrics(csv_path)
    base = df["metric"].str.split("/").str[0]
    panels = [m for m in PLOTTED if (base == m).any()]
    if not panels:
        raise DataError(
            f"{csv_path} has none of the plotted metrics {list(PLOTTED)}; it has {sorted(df['metric'].unique())}"
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        _panel(ax, df[base == name], name)
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    out = run_dir / "metrics.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _panel(ax: plt.Axes, rows: pd.DataFrame, name: str) -> None:
    xcol = "round" if rows["round"].notna().any() else "queries" if rows["queries"].notna().any() else "step"
    for metric, group in rows.groupby("metric", sort=True):
        group = group[group[xcol].notna()]
        if group.empty:
            continue
        curve = group.groupby(xcol)["value"].mean()
        label = f"{metric} (mean over clients)" if group["client"].notna().all() else str(metric)
        ax.plot(curve.index.astype(float), curve.values, marker="o", ms=3, label=label)
    ax.set_xlabel(xcol)
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
