"""How well the federation's clients clean their crowd labels, and where the errors they keep go.

Label accuracy alone hides what matters downstream: under Dirichlet skew a client's few items of a class that
is rare *on that client* are the ones its model most easily gets wrong, and an error that always lands on the
client's most frequent class is systematic, so a network trained on it cannot average it out the way it does
with errors spread over every class. For each cell (annotator pool kind x Dirichlet ``alpha`` x annotator
noise x seed) and each way of cleaning (``benchmarks/federated.py``'s ``CLEANINGS``: ``mv``, ``ds``,
``bila`` as the shipped configs run it, without its log class prior and with Adam steps, ``bila-prior``,
the same with the prior, BILA's default outside federations, and ``bila-worker``, the same as ``bila`` with the
shrinkage centre of BILA's default) this runs exactly the clients' online ingestion
(``fedkd.federation.local.ingest_labels``, every chunk once) on the shared default federation of
``simulations/fed_avg.toml`` and reports, pooled over the clients:

* ``label_acc``: cleaned labels that are right;
* ``rare_recall``: the same on items whose true class is under 10 % of their client's items;
* ``errors_to_majority``: the share of wrong labels that name the client's most frequent true class.

    python benchmarks/client_labels.py    # uniform and mixed pools, alpha 0.1 / 0.5 / 100, low and high noise, 3 seeds

Writes ``benchmarks/results/client_labels.csv`` (one row per cell, seed and cleaning) and ``client_labels.md``
(mean over seeds). Needs no training: about a minute here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fedkd.data.crowd import NOISE_KINDS
from fedkd_benchmarks.federated import CLEANINGS, NOISE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "simulations" / "fed_avg.toml"
RARE_SHARE = 0.1


def clean_labels(alpha: float, noise: str, seed: int, cleaning: str, noise_kind: str = "uniform") -> dict[str, float]:
    """Pooled label quality of every client of the default federation after its last label chunk."""
    from fedkd.config import load_config
    from fedkd.federation.data import client_data
    from fedkd.federation.local import ingest_labels

    aggregator, options = CLEANINGS[cleaning]
    overrides = {"federation.alpha": alpha, "crowd.noise": NOISE[noise], "crowd.noise_kind": noise_kind,
                 "client.aggregator": aggregator,
                 "client.aggregator_options": {aggregator: options}, "run.seed": seed}
    cfg = load_config(CONFIG, overrides)
    right, rare_right, rare_total, to_majority = [], 0, 0, 0
    for pid in range(cfg.federation.num_clients):
        data = client_data(cfg, pid)
        labels = ingest_labels(cfg, data, None, len(data.chunks)).labels
        known = labels >= 0
        labels, truth = labels[known], data.y_true[known]
        share = np.bincount(truth, minlength=data.n_classes) / len(truth)
        ok = labels == truth
        rare = share[truth] < RARE_SHARE
        right.append(ok)
        rare_right += int((ok & rare).sum())
        rare_total += int(rare.sum())
        to_majority += int((~ok & (labels == share.argmax())).sum())
    ok = np.concatenate(right)
    wrong = int((~ok).sum())
    return {
        "alpha": alpha, "noise_kind": noise_kind, "noise": noise, "seed": seed, "cleaning": cleaning,
        "label_acc": float(ok.mean()),
        "rare_recall": rare_right / rare_total if rare_total else float("nan"),
        "rare_items": rare_total,
        "errors_to_majority": to_majority / wrong if wrong else float("nan"),
    }


def markdown(rows: pd.DataFrame) -> str:
    """One row per (noise kind, alpha, noise, cleaning): means over seeds."""
    keys = ["noise_kind", "alpha", "noise", "cleaning"]
    table = rows.groupby(keys, sort=False)[["label_acc", "rare_recall", "errors_to_majority"]].mean().reset_index()
    lines = [
        "| noise_kind | alpha | noise | cleaning | label_acc | rare_recall | errors_to_majority |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.noise_kind} | {r.alpha:g} | {r.noise} | {r.cleaning} | {r.label_acc:.3f} | {r.rare_recall:.3f} | "
        f"{r.errors_to_majority:.2f} |"
        for r in table.itertuples()
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", nargs="+", type=float, default=[0.1, 0.5, 100.0])
    parser.add_argument("--noises", nargs="+", default=list(NOISE), choices=list(NOISE))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cleanings", nargs="+", default=list(CLEANINGS), choices=list(CLEANINGS))
    parser.add_argument("--noise-kinds", nargs="+", default=["uniform", "mixed"], choices=list(NOISE_KINDS),
                        help="crowd.noise_kind: uniform (every annotator equally wrong), mixed (experts to spammers)")
    args = parser.parse_args()
    rows = pd.DataFrame([
        clean_labels(alpha, noise, seed, cleaning, kind)
        for kind in args.noise_kinds
        for alpha in args.alphas
        for noise in args.noises
        for seed in args.seeds
        for cleaning in args.cleanings
    ])
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows.to_csv(RESULTS / "client_labels.csv", index=False)
    text = (
        f"# How the clients clean their labels\n\n`python benchmarks/client_labels.py` on the federation of "
        f"`simulations/fed_avg.toml` (10 clients, 3 labels per item from 5 annotators); mean over seeds "
        f"{args.seeds}. `rare_recall`: accuracy on items whose class is under {RARE_SHARE:.0%} of their "
        f"client's items; `errors_to_majority`: share of the wrong labels that name the client's most frequent "
        f"class. `noise_kind`: `uniform`, every annotator wrong at a rate drawn from the `noise` range, errors "
        f"spread evenly (majority vote is then already the best rule); `mixed`, a pool of experts, average workers "
        f"at that rate, spammers and adversaries (`fedkd.data.crowd.make_confusions`).\n\n{markdown(rows)}\n"
    )
    (RESULTS / "client_labels.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
