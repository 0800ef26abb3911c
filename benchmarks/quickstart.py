"""The README's headline: the quickstart and FedAvg on the same federation, over seeds, as a user runs them.

Runs ``simulations/quickstart.toml`` and ``simulations/fed_avg.toml`` unchanged but for ``run.seed`` and
records each run's final ``test_acc``, the clients' combined answer on the test set (``test_acc/ensemble``,
the data-free student's ceiling), wall time and the peak resident memory of this process and all its
descendants (Ray's daemons and actors). One seed is not a result (the same seed ends differently on
another machine), so the README quotes the mean and spread of these rows.

    python benchmarks/quickstart.py [--seeds 0 1 2] [--configs quickstart fed_avg]   # about 20 min here

Merges its rows into ``results/quickstart.csv`` (one row per config and seed; a re-run replaces its row).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

import fedkd
from fedkd_benchmarks.federation_overhead import PeakMemory
from fedkd_benchmarks.result_rows import merge_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ("quickstart", "fed_avg")


def run_one(config: str, seed: int, tmp: Path) -> dict[str, object]:
    with PeakMemory() as mem:
        start = time.perf_counter()
        result = fedkd.run(ROOT / "simulations" / f"{config}.toml", overrides={"run.seed": seed},
                           out=tmp / f"{config}-s{seed}")
        wall = time.perf_counter() - start
    server = result.metrics[result.metrics["client"].isna()]
    ensemble = server[server["metric"] == "test_acc/ensemble"]["value"]
    return {
        "config": config,
        "seed": seed,
        "test_acc": result.final("test_acc"),
        "ensemble_acc": float(ensemble.iloc[-1]) if len(ensemble) else float("nan"),
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(mem.peak / 2**20),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            for seed in args.seeds:
                rows.append(run_one(config, seed, Path(tmp)))
                print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "quickstart.csv"
    merge_rows(pd.DataFrame(rows), path, ["config", "seed"]).to_csv(path, index=False)


if __name__ == "__main__":
    main()
