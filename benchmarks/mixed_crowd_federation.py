"""What cleaning is worth downstream when the clients' annotators are a realistic crowd of mixed skill.

The shared default federation (``simulations/fed_avg.toml``) with ``crowd.noise_kind = "mixed"``: each client's
5 annotators are drawn as experts, average workers (wrong at the ``noise`` rate), spammers and adversaries
(``fedkd.data.crowd.make_confusions``), instead of all being equally and uniformly wrong, the one crowd on which
majority vote is already optimal. Each run is ``benchmarks/federated.py``'s ``run_one`` (the same ``fedkd run``
of a shipped config, read back when finished) with that one override; only the cleaning and the seed vary.

    python benchmarks/mixed_crowd_federation.py                          # FedAvg, mv vs bila, seeds 0-2 (~15 min)
    python benchmarks/mixed_crowd_federation.py --strategies fedavg fedaedm   # + fedaedm (~40 min)
    python benchmarks/mixed_crowd_federation.py --strategies fedavg fedaedm --aggregators mv ds bila

``--set KEY=VALUE`` changes the config of every run (a lever, measured in isolation) and ``--tag`` names the
variant (``default`` otherwise); its runs live in their own directories.

Writes ``benchmarks/results/mixed_crowd_federation.csv`` (one row per run; rows of other strategies, cleanings,
seeds and tags are kept) and ``.md`` (mean ± std over seeds).
"""

from __future__ import annotations

import argparse

import pandas as pd

from fedkd_benchmarks.federated import CLEANINGS, CONFIGS, NOISE, ROOT, run_one
from fedkd_benchmarks.result_rows import SELECTION_SEED, merge_rows

RESULTS = ROOT / "benchmarks" / "results"


def write_summary(runs: pd.DataFrame, alpha: float, noise: str) -> str:
    """``mixed_crowd_federation.md`` from every row of the CSV: mean ± std over seeds per variant; returns its text."""
    selection = (runs["seed"] >= SELECTION_SEED).rename("selection")
    table = runs.groupby(["tag", "strategy", "aggregator", selection], sort=False).agg(
        mean=("test_acc", "mean"), std=("test_acc", "std"), ensemble=("ensemble_acc", "mean"),
        seeds=("seed", lambda seeds: ", ".join(str(int(s)) for s in sorted(seeds))))
    lines = ["| variant | strategy | cleaning | final test_acc (mean ± std) | seeds | clients' combined answer |",
             "|---|---|---|---:|---:|---:|"]
    lines += [f"| {t} | {s} | {a} | {r['mean']:.3f} ± {r['std']:.3f} | {r['seeds']} | "
              f"{'–' if pd.isna(r['ensemble']) else format(r['ensemble'], '.3f')} |"
              for (t, s, a, _), r in table.iterrows()]
    text = (f"# Cleaning on a crowd of mixed skill, downstream\n\n`python benchmarks/mixed_crowd_federation.py` on "
            f"the shared default federation with `crowd.noise_kind = \"mixed\"` (Dirichlet {alpha:g}, average "
            f"workers' noise {NOISE[noise]}); a variant is the shipped config with the overrides its runs "
            "were made with.\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "mixed_crowd_federation.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["fedavg"], choices=list(CONFIGS))
    parser.add_argument("--aggregators", nargs="+", default=["mv", "bila"], choices=list(CLEANINGS))
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--noise", default="high", choices=list(NOISE))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", default="default")
    args = parser.parse_args()
    runs_dir = ROOT / "runs" / "benchmark-mixed-crowd" / ("" if args.tag == "default" else args.tag)
    extra = ["crowd.noise_kind=mixed", *args.overrides]
    rows = [
        run_one(strategy, args.alpha, args.noise, aggregator, seed, runs_dir, extra)
        for strategy in args.strategies
        for aggregator in args.aggregators
        for seed in args.seeds
    ]
    runs = pd.DataFrame(rows).assign(noise_kind="mixed", tag=args.tag)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "mixed_crowd_federation.csv"
    runs = merge_rows(runs, path, ["tag", "strategy", "aggregator", "seed"])
    runs.to_csv(path, index=False)
    print(write_summary(runs, args.alpha, args.noise))


if __name__ == "__main__":
    main()
