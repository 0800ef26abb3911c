"""What asking in waves costs the data-free strategies: one wave per round against the per-batch protocol.

For each config (``simulations/fed_aedm.toml``, ``fed_tandem.toml``) and seed, one wave per round
(``query.wave_size = 0``: the round's share of the budget in one message to each client) and the per-batch
protocol (``query.wave_size = distill.batch_size``: a round trip per query batch, as before waves) are run with
everything else equal. A row per run: final ``test_acc``, the clients' combined answer, seconds of all rounds,
payload bytes. Runs live under ``--runs`` and are read back when finished, so the table can be filled over
several sessions; ``benchmarks/results/waves.csv`` (runs) and ``waves.md`` (mean ± std over seeds).

    python benchmarks/waves.py [--configs fed_aedm fed_tandem] [--seeds 0 1 2] [--modes wave batch]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fedkd_benchmarks.result_rows import merge_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODES = ("wave", "batch")


def run_one(config: str, mode: str, seed: int, runs: Path) -> dict[str, object]:
    import fedkd
    from fedkd.config import load_config
    from fedkd.runs import read_metrics
    from fedkd_benchmarks.federated import refuse_other_config

    cfg = load_config(ROOT / "simulations" / f"{config}.toml", {"run.seed": seed})
    cfg = cfg.replace({"query.wave_size": cfg.distill.batch_size if mode == "batch" else 0})
    out = runs / f"{config}-{mode}-s{seed}"
    refuse_other_config(out, cfg.to_dict())
    done = out / "metrics.csv"
    metrics = read_metrics(done) if done.exists() else None
    rounds = cfg.federation.num_rounds
    if metrics is None or metrics.query(f"metric == 'test_acc' and round == {rounds}").empty:
        metrics = fedkd.run(cfg, out=out, resume=done.exists()).metrics
    server = metrics[metrics["client"].isna()]

    def final(name: str) -> float:
        values = server.query(f"metric == '{name}'")["value"]
        return float(values.iloc[-1]) if len(values) else float("nan")

    return {"config": config, "mode": mode, "seed": seed, "wave_size": cfg.query.wave_size,
            "noise_kind": cfg.crowd.noise_kind,
            "test_acc": final("test_acc"), "ensemble": final("test_acc/ensemble"),
            "seconds": float(server.query("metric == 'round_seconds'")["value"].sum()),
            "bytes_down": float(server.query("metric == 'bytes_down'")["value"].sum()),
            "bytes_up": float(server.query("metric == 'bytes_up'")["value"].sum())}


def markdown(runs: pd.DataFrame) -> str:
    lines = ["| config | annotators | protocol | seeds | test_acc | clients' combined answer | s (all rounds) "
             "| MB down | MB up |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for (config, crowd, mode), rows in runs.groupby(["config", "noise_kind", "mode"], sort=True):
        label = "one wave per round" if mode == "wave" else "per batch"
        acc, ens = rows["test_acc"], rows["ensemble"]
        lines.append(f"| {config} | {crowd} | {label} | {len(rows)} | {acc.mean():.3f} ± {acc.std(ddof=0):.3f} "
                     f"| {ens.mean():.3f} | {rows['seconds'].mean():.0f} | {rows['bytes_down'].mean() / 1e6:.1f} "
                     f"| {rows['bytes_up'].mean() / 1e6:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["fed_aedm", "fed_tandem"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmark-waves")
    args = parser.parse_args()
    rows = [run_one(config, mode, seed, args.runs)
            for config in args.configs for seed in args.seeds for mode in args.modes]
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "waves.csv"
    new = merge_rows(pd.DataFrame(rows), path, ["config", "noise_kind", "mode", "seed"])
    new.to_csv(path, index=False)
    (RESULTS / "waves.md").write_text(markdown(new))
    print(markdown(new))


if __name__ == "__main__":
    main()
