"""What the Flower/Ray layer costs: the same federated rounds run as a Ray simulation and as a plain loop.

The plain loop (``fedkd.federation.plain``) calls exactly the functions the ClientApp calls, one sampled client
after another in this process (for the query strategies it runs the same ``QueryServer`` round over a plain link);
the simulation runs them in Ray actors (``federation.client_cpus`` each) behind Flower messages. Both are
repeated ``--repeats`` times; a row holds the median over repeats of each repeat's steady-state round time
(rounds after the first), their ratio, the simulation's first round, each round's median over repeats
(``sim_round_s_by_round``: a query strategy's last round also holds its offline stage on the whole store), the
peak resident memory of this process and all its descendants (Ray's daemons and actors, sampled from /proc every
0.2 s) and the payload bytes per round.
Rows are merged into ``benchmarks/results/federation_overhead.csv`` (one row per config, strategy and client
count), which ``--plot`` draws.

    python benchmarks/federation_overhead.py [--config simulations/crowd_fedavg.toml] [--set key=value ...]
    python benchmarks/federation_overhead.py --plot
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import torch

import fedkd
from fedkd.config import load_config
from fedkd.federation.data import train_test
from fedkd.federation.plain import run_plain
from fedkd.federation.sampling import clients_per_round
from fedkd.resources import tree_rss_bytes
from fedkd_benchmarks.result_rows import merge_rows

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY = RESULTS / "federation_overhead.csv"
KEYS = ["config", "strategy", "num_clients", "clients_per_round"]


class PeakMemory:
    def __enter__(self) -> PeakMemory:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_bytes() or 0)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(config: str, overrides: list[str], repeats: int) -> dict[str, object]:
    """One row: the simulation and the plain loop, each ``repeats`` times."""
    cfg = load_config(config, overrides)
    train_test(cfg)  # load the data once, outside both timings
    sim, plain, walls, each_round, peak = [], [], [], [], 0
    for _ in range(repeats):
        with PeakMemory() as mem, tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = fedkd.run(cfg, out=Path(tmp) / "run")
            walls.append(time.perf_counter() - start)
        peak = max(peak, mem.peak)
        metrics = result.metrics[result.metrics["client"].isna()]
        rounds = metrics.query("metric == 'round_seconds'")["value"].tolist()
        each_round.append(rounds)
        sim.append(statistics.median(rounds[1:]))
        torch.set_num_threads(1)
        reference = run_plain(cfg)
        plain.append(statistics.median(reference.round_seconds[1:]))
    bytes_per_round = {name: metrics.query(f"metric == '{name}'")["value"].median()
                       for name in ("bytes_down", "bytes_up")}
    sim_median, plain_median = statistics.median(sim), statistics.median(plain)
    return {
        "config": config,
        "strategy": cfg.federation.strategy,
        "num_clients": cfg.federation.num_clients,
        "clients_per_round": clients_per_round(cfg),
        "num_rounds": cfg.federation.num_rounds,
        "budget": cfg.distill.budget if cfg.federation.strategy != "fedavg" else 0,
        "repeats": repeats,
        "sim_wall_s": round(statistics.median(walls), 1),
        "sim_first_round_s": round(statistics.median(r[0] for r in each_round), 2),
        "sim_round_s_median": round(sim_median, 2),
        "plain_round_s_median": round(plain_median, 2),
        "sim_over_plain": round(sim_median / plain_median, 2),
        "sim_round_s_all": " ".join(f"{s:.2f}" for s in sim),
        "sim_round_s_by_round": " ".join(f"{statistics.median(r):.2f}" for r in zip(*each_round, strict=True)),
        "plain_round_s_all": " ".join(f"{s:.2f}" for s in plain),
        "peak_rss_mib": round(peak / 2**20),
        "bytes_down_per_round": int(bytes_per_round["bytes_down"]),
        "bytes_up_per_round": int(bytes_per_round["bytes_up"]),
        "sim_test_acc": round(result.final("test_acc"), 4),
        "plain_test_acc": round(reference.test_acc[-1], 4),
    }


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for strategy, rows in table.groupby("strategy"):
        rows = rows.sort_values("num_clients")
        axes[0].plot(rows["num_clients"], rows["sim_round_s_median"], "o-", label=f"{strategy}, Flower/Ray")
        axes[0].plot(rows["num_clients"], rows["plain_round_s_median"], "x--", label=f"{strategy}, plain loop")
        axes[1].plot(rows["num_clients"], rows["sim_over_plain"], "o-", label=strategy)
    axes[0].set(xscale="log", xlabel="clients (1,000: 100 sampled per round)", ylabel="seconds per round (median)")
    axes[1].axhline(1.5, color="grey", lw=0.8, ls=":")
    axes[1].set(xscale="log", xlabel="clients", ylabel="simulated / plain round time")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="simulations/crowd_fedavg.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plot", action="store_true", help="only redraw the plot from the results")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if not args.plot:
        row = measure(args.config, args.overrides, args.repeats)
        table = merge_rows(pd.DataFrame([row]), SUMMARY, KEYS)
        table.to_csv(SUMMARY, index=False)
        print(pd.Series(row).to_string())
        print(f"wrote {SUMMARY}")
    plot(pd.read_csv(SUMMARY), RESULTS / "federation_overhead.png")


if __name__ == "__main__":
    main()
