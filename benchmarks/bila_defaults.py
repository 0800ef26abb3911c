"""BILA's defaults chosen by leave-one-set-out over the bundled real sets and the synthetic regimes.

Every configuration of a small grid over the levers that decide how BILA behaves with little evidence

- ``shrinkage``: pseudo-labels per confusion row centred on the crowd's pooled confusion (0 = none),
- ``shrink_to``: that centre in full (``pooled``), in its one-coin form, or re-centred on each worker's own
  accuracy (``worker``),
- ``shrink_rule``: that strength fixed, or estimated from the spread of the workers' accuracies
  (empirical Bayes) with ``shrinkage`` as its ceiling: against majority-vote shares and BILA's posteriors
  (``moments``) or from how often workers agree with each other (``agreement``),
- ``epochs``: steps per chunk (with ``tol`` = 0.002: stop earlier once no posterior moves more than that),
- ``m_step``: confusions set in closed form from the posteriors at every step instead of by Adam (the
  variational-Bayes expectation of the log confusions),

runs online in chunks of 10 % of the tasks (file order; the regimes in their generated order) on each of the
8 bundled real sets and the 7 regimes of :mod:`fedkd.data.crowd_regimes` (seed 0). Leave-one-set-out: for
each set, the configuration with the best mean accuracy over the *other* 14 is chosen and its accuracy on the
held-out set recorded, which estimates what the selection gives on a crowd it has never seen. The shipped
default is the configuration with the best mean over all 15 (what the same rule picks with every set).

Writes ``results/bila_defaults.csv`` (one row per configuration and set) and ``results/bila_defaults.md``.

    python benchmarks/bila_defaults.py            # about 10 min on one busy core
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fedkd.aggregation import BILA, BILAConfig, MajorityVote, predict_online
from fedkd.data.crowd import CROWD_SETS, chunk_tasks, gold_accuracy, load_crowd
from fedkd.data.crowd_regimes import REGIMES, simulate_regime

RESULTS = Path(__file__).resolve().parent / "results"
GRID = {"shrinkage": [0.0, 2.0, 5.0, 10.0, 20.0, 50.0], "shrink_to": ["pooled", "one_coin", "worker"],
        "shrink_rule": ["fixed", "moments", "agreement"], "epochs": [7, 20], "m_step": [False, True]}
TOL = 0.002
# The levers this grid added after the previous selection (the per-worker centre); the grid without them is the
# earlier one.
ADDED = {"shrink_to": ["worker"]}
PREVIOUS = {"shrinkage": 0.0, "shrink_to": "pooled", "shrink_rule": "fixed", "epochs": 7, "m_step": False, "tol": 0.0}


def configurations() -> list[dict]:
    """The grid, without the duplicates that ``shrink_to`` makes when there is no shrinkage."""
    grid = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    no_shrinkage = {"shrink_to": "pooled", "shrink_rule": "fixed"}
    grid = [{**g, "tol": TOL} for g in grid if g["shrinkage"] > 0 or g | no_shrinkage == g]
    return [PREVIOUS, *grid]


def key(config: dict) -> str:
    return " ".join(f"{k}={config[k]}" for k in (*GRID, "tol"))


def evaluation_sets() -> list[tuple[str, bool, pd.DataFrame, pd.DataFrame, int]]:
    """(name, real, labels, gold, classes) of the 8 bundled sets and the 7 regimes at seed 0."""
    sets = [(n, True, s.labels, s.gold, s.n_classes) for n in CROWD_SETS for s in [load_crowd(n)]]
    return sets + [(n, False, c.labels, c.gold, c.n_classes) for n in REGIMES for c in [simulate_regime(n, 0)]]


def measure(configs: list[dict]) -> pd.DataFrame:
    rows = []
    for name, real, labels, gold, n_classes in evaluation_sets():
        chunks = chunk_tasks(labels, n_chunks=10)
        mv = gold_accuracy(MajorityVote(n_classes).fit_predict(labels), gold)[0]
        for config in configs:
            start = time.perf_counter()
            emitted = pd.concat(predict_online(BILA(n_classes, seed=0, **config), chunks))
            rows.append({"dataset": name, "real": real, "config": key(config), **config, "mv": mv,
                         "accuracy": gold_accuracy(emitted, gold)[0], "seconds": time.perf_counter() - start})
        print(f"{name}: {len(configs)} configurations", flush=True)
    return pd.DataFrame(rows)


def leave_one_set_out(runs: pd.DataFrame) -> pd.DataFrame:
    """For each held-out set: the configuration with the best mean accuracy on the others, and how it does there."""
    acc = runs.pivot(index="config", columns="dataset", values="accuracy")
    rows = []
    for held_out in acc.columns:
        chosen = acc.drop(columns=held_out).mean(axis=1).idxmax()
        rows.append({"held_out": held_out, "chosen": chosen, "accuracy": acc.loc[chosen, held_out],
                     "previous_default": acc.loc[key(PREVIOUS), held_out],
                     "best_in_grid": acc[held_out].max()})
    return pd.DataFrame(rows)


def lever_table(runs: pd.DataFrame, chosen: str) -> list[str]:
    """Mean accuracy over real sets and regimes when one lever at a time moves away from the chosen configuration."""
    by_config = runs.groupby(["config", "real"])["accuracy"].mean().unstack("real") * 100
    base = runs[runs["config"] == chosen].iloc[0]
    lines = ["| lever | value | mean real sets | mean regimes |", "|---|---|---:|---:|"]
    for lever, values in GRID.items():
        for value in values:
            variant = {k: base[k] for k in GRID} | {lever: value, "tol": TOL}
            if variant["shrinkage"] == 0:
                variant |= {"shrink_to": "pooled", "shrink_rule": "fixed"}
            k = key(variant)
            mark = " (chosen)" if k == chosen else ""
            lines.append(f"| {lever} | {value}{mark} | {by_config.loc[k, True]:.2f} | {by_config.loc[k, False]:.2f} |")
    return lines


def loso_table(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`leave_one_set_out` with, per held-out set, whether it is a real set, its majority vote, the number
    of configurations, and the configuration chosen on all sets (the shipped default) with its accuracy there."""
    acc = runs.pivot(index="config", columns="dataset", values="accuracy")
    shipped = acc.mean(axis=1).idxmax()
    loso = leave_one_set_out(runs)
    loso["real"] = loso["held_out"].isin(set(runs.loc[runs["real"], "dataset"]))
    loso["mv"] = loso["held_out"].map(runs.groupby("dataset")["mv"].first())
    loso["shipped"] = shipped
    loso["shipped_accuracy"] = acc.loc[shipped, loso["held_out"]].to_numpy()
    loso["configurations"] = len(acc)
    return loso


def report(runs: pd.DataFrame) -> str:
    acc = runs.pivot(index="config", columns="dataset", values="accuracy")
    chosen = acc.mean(axis=1).idxmax()
    loso = loso_table(runs)
    mv = loso.set_index("held_out")["mv"]
    lines = [
        "# BILA's defaults by leave-one-set-out", "",
        f"`python benchmarks/bila_defaults.py`: {len(acc)} configurations of BILA online (10 % chunks, seed 0) on the "
        f"8 bundled sets and the 7 synthetic regimes (seed 0). Chosen by the best mean accuracy over all 15 sets: "
        f"**{chosen}** (the shipped default). Previous default: {key(PREVIOUS)}.", "",
        "Leave-one-set-out: the configuration chosen on the other 14 sets, scored on the held-out one (accuracy %; "
        "`mv`: majority vote, seed 0).", "",
        "| held out | chosen on the others | accuracy | previous default | best in grid | mv |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r.held_out} | {r.chosen} | {100 * r.accuracy:.1f} | {100 * r.previous_default:.1f} | "
              f"{100 * r.best_in_grid:.1f} | {100 * mv[r.held_out]:.1f} |" for r in loso.itertuples()]
    for label, part in (("real sets", loso[loso["real"]]), ("regimes", loso[~loso["real"]])):
        wins = int((part["accuracy"] >= mv[part["held_out"]].to_numpy()).sum())
        lines.append(f"| **mean, {label}** | at or above mv on {wins}/{len(part)} | {100 * part['accuracy'].mean():.2f}"
                     f" | {100 * part['previous_default'].mean():.2f} | {100 * part['best_in_grid'].mean():.2f} | "
                     f"{100 * mv[part['held_out']].mean():.2f} |")
    lines += ["", "One lever at a time from the chosen configuration (mean accuracy %, 10 % chunks):", "",
              *lever_table(runs, chosen)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true", help="rewrite the markdown from the CSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    csv = args.out / "bila_defaults.csv"
    if args.report_only:
        runs = pd.read_csv(csv)
    else:
        runs = measure(configurations())
        args.out.mkdir(parents=True, exist_ok=True)
        runs.to_csv(csv, index=False)
    text = report(runs)
    (args.out / "bila_defaults.md").write_text(text)
    earlier = runs[~np.logical_or.reduce([runs[k].isin(v) for k, v in ADDED.items()])]
    pd.concat([loso_table(runs).assign(grid="extended"), loso_table(earlier).assign(grid="earlier")]).to_csv(
        args.out / "bila_defaults_loso.csv", index=False)
    print(text)
    shipped = {k: v for k, v in asdict(BILAConfig()).items() if k in (*GRID, "tol")}
    print(f"shipped BILAConfig: {key(shipped)}; mean over all sets "
          f"{np.mean(runs.pivot(index='config', columns='dataset', values='accuracy').loc[key(shipped)]):.4f}"
          if key(shipped) in set(runs["config"]) else f"shipped BILAConfig {key(shipped)} is not in the grid")


if __name__ == "__main__":
    main()
