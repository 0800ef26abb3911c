"""What the Flower/Ray layer costs: the same federated rounds run as a Ray simulation and as a plain loop.

The plain loop (``fedkd.federation.plain``) calls exactly the functions the ClientApp calls, one client
after another in this process; the simulation runs them in
Ray actors (``federation.client_cpus`` each) behind Flower messages. Also records the simulation's wall
time and the peak resident memory of this process and all its descendants (Ray's daemons and actors),
sampled from /proc every 0.2 s.

    python benchmarks/federation_overhead.py [--config simulations/crowd_fedavg.toml] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import torch

import fedkd
from fedkd.config import load_config
from fedkd.federation.data import train_test
from fedkd.federation.plain import run_plain_fedavg
from fedkd.resources import tree_rss_bytes

RESULTS = Path(__file__).resolve().parent / "results"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="simulations/crowd_fedavg.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    train_test(cfg)  # load the data once, outside both timings

    with PeakMemory() as mem, tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = fedkd.run(cfg, out=Path(tmp) / "run")
        wall = time.perf_counter() - start
    sim_rounds = result.metrics.query("metric == 'round_seconds'")["value"].tolist()
    torch.set_num_threads(1)
    plain = run_plain_fedavg(cfg)
    plain_rounds, plain_acc = plain.round_seconds, plain.test_acc[-1]

    n = cfg.federation.num_clients
    steady_sim = pd.Series(sim_rounds[1:]).median()
    steady_plain = pd.Series(plain_rounds[1:]).median()
    row = {
        "config": args.config,
        "num_clients": n,
        "num_rounds": cfg.federation.num_rounds,
        "client_cpus": cfg.federation.client_cpus,
        "sim_wall_s": round(wall, 1),
        "sim_first_round_s": round(sim_rounds[0], 2),
        "sim_round_s_median": round(steady_sim, 2),
        "plain_round_s_median": round(steady_plain, 2),
        "sim_over_plain": round(steady_sim / steady_plain, 2),
        "peak_rss_mib": round(mem.peak / 2**20),
        "sim_test_acc": round(result.final("test_acc"), 4),
        "plain_test_acc": round(plain_acc, 4),
    }
    table = pd.DataFrame([row])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"federation_overhead_{n}clients.csv"
    table.to_csv(out, index=False)
    print(table.T.to_string(header=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
