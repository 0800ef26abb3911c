"""Why online BILA trails majority vote or streaming DS on some synthetic regimes: what each part costs.

For each regime (``--regimes``, each drawn ``--draws`` times) and 10 % chunks in generated order, it measures on
gold:

- ``mv``: majority vote; ``ds_stream``: streaming Dawid-Skene, each chunk labelled on arrival;
- ``bila``: BILA online with its defaults, each chunk labelled on arrival (the online contract);
- ``bila_hindsight``: the same model after the last chunk, labelling every task again (needs every label kept,
  so not online): what labelling on arrival costs;
- ``bila_offline``: BILA on all labels as one chunk; ``bila_long``: online with 100 steps per chunk and no early
  stop: whether more fitting per chunk helps;
- ``oracle``: the naive-Bayes posterior with the workers' true confusions (the data's own noise, no estimation);
- ``onecoin_known_spread``: offline one-coin EM whose worker accuracies are shrunk towards the crowd's mean by the
  strength that the spread of the workers' true accuracies implies: who is good must be estimated from the labels,
  how much workers differ is given. Where the workers are one-coin (``many_workers``), this bounds what estimating
  worker accuracies can gain over majority vote much more tightly than ``oracle``;
- the same four on-arrival columns restricted to the first 30 % of the tasks (``early_*``), where the model has
  seen least;
- ``ceiling_moments`` / ``ceiling_agreement``: the share of chunks on which the shrinkage strength sits at its
  ceiling (``shrinkage``) under ``shrink_rule="moments"`` and ``"agreement"``.

Writes ``results/bila_diagnosis.csv`` (one row per regime and draw) and ``results/bila_diagnosis.md`` (means).

    python benchmarks/bila_diagnosis.py            # about a minute
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fedkd.aggregation import BILA, DawidSkene, MajorityVote, predict_online
from fedkd.aggregation.dawid_skene import posterior_from_confusions, vote_shares
from fedkd.data.crowd import chunk_tasks, gold_accuracy, make_confusions
from fedkd.data.crowd_regimes import SyntheticCrowd, simulate_regime

RESULTS = Path(__file__).resolve().parent / "results"
EARLY_SHARE = 0.3


def oracle(crowd: SyntheticCrowd) -> pd.Series:
    """Labels from the workers' true confusions and the uniform class prior the regimes draw from."""
    agg = MajorityVote(crowd.n_classes)
    enc = agg._encode(crowd.labels, grow=True)
    log_conf = np.log(np.concatenate([crowd.confusions[np.asarray(agg.workers_)], crowd.confusions[:1]]) + 1e-12)
    return pd.Series(posterior_from_confusions(enc, log_conf, None).argmax(axis=1), index=enc.tasks)


def one_coin_known_spread(crowd: SyntheticCrowd, iterations: int = 50) -> pd.Series:
    """Labels of ``onecoin_known_spread`` (module docstring): EM from the vote shares; each worker's accuracy is
    ``(agreement + s * mu) / (labels + s)``, with ``mu`` the crowd's estimated mean accuracy and ``s = mu (1 - mu) /
    var - 1`` the beta-binomial strength of the true accuracies' spread ``var``."""
    C = crowd.n_classes
    agg = MajorityVote(C)
    enc = agg._encode(crowd.labels, grow=True)
    workers = np.asarray(agg.workers_)
    true_accuracy = np.trace(crowd.confusions[workers], axis1=1, axis2=2) / C
    spread = true_accuracy.mean() * (1 - true_accuracy.mean()) / true_accuracy.var() - 1
    labels_per_worker = np.bincount(enc.worker, minlength=len(workers))
    posterior = vote_shares(enc, C)
    for _ in range(iterations):
        agreement = np.bincount(enc.worker, weights=posterior[enc.task, enc.label], minlength=len(workers))
        mean = agreement.sum() / labels_per_worker.sum()
        accuracy = np.append((agreement + spread * mean) / (labels_per_worker + spread), mean)
        # the uniform kind draws nothing from the generator when every worker's rate is given
        conf = make_confusions(len(accuracy), C, "uniform", 1 - accuracy, np.random.default_rng(0))
        posterior = posterior_from_confusions(enc, np.log(conf), None)
    return pd.Series(posterior.argmax(axis=1), index=enc.tasks)


def ceiling_share(crowd: SyntheticCrowd, chunks: list[pd.DataFrame], rule: str) -> float:
    """Share of chunks whose shrinkage strength equals the ceiling under ``rule``."""
    agg = BILA(crowd.n_classes, seed=0, shrink_rule=rule)
    at_ceiling = []
    for chunk in chunks:
        enc = agg._encode(chunk, grow=True)
        strength = agg._strength(enc, vote_shares(enc, crowd.n_classes))
        at_ceiling.append(strength >= agg.config.shrinkage)
        agg._update(enc)
        agg.n_chunks_seen_ += 1
    return float(np.mean(at_ceiling))


def diagnose(name: str, draw: int) -> dict:
    crowd = simulate_regime(name, draw)
    C, gold = crowd.n_classes, crowd.gold
    chunks = chunk_tasks(crowd.labels, n_chunks=10)
    early = gold[gold["task"] < EARLY_SHARE * len(gold)]
    bila = BILA(C, seed=draw)
    labels = {
        "mv": MajorityVote(C, seed=draw).fit_predict(crowd.labels),
        "ds_stream": pd.concat(predict_online(DawidSkene(C, seed=draw), chunks)),
        "bila": pd.concat(predict_online(bila, chunks)),
        "oracle": oracle(crowd),
        "onecoin_known_spread": one_coin_known_spread(crowd),
    }
    row = {"regime": name, "draw": draw, **{k: gold_accuracy(v, gold)[0] for k, v in labels.items()}}
    row |= {f"early_{k}": gold_accuracy(v, early)[0] for k, v in labels.items()}
    row["bila_hindsight"] = gold_accuracy(bila.predict(crowd.labels), gold)[0]
    row["bila_offline"] = gold_accuracy(BILA(C, seed=draw).fit_predict(crowd.labels), gold)[0]
    long = BILA(C, seed=draw, epochs=100, tol=0.0)
    row["bila_long"] = gold_accuracy(pd.concat(predict_online(long, chunks)), gold)[0]
    for rule in ("moments", "agreement"):
        row[f"ceiling_{rule}"] = ceiling_share(crowd, chunks, rule)
    return row


def report(runs: pd.DataFrame) -> str:
    mean = runs.drop(columns="draw").groupby("regime", sort=False).mean()
    pct = [c for c in mean.columns if not c.startswith("ceiling")]
    mean[pct] = mean[pct] * 100
    columns = list(mean.columns)
    lines = ["# Where online BILA loses on the synthetic regimes", "",
             f"`python benchmarks/bila_diagnosis.py`: accuracy on gold (%), 10 % chunks, mean over draws "
             f"{sorted(runs['draw'].unique().tolist())}; `early_*`: the first {EARLY_SHARE:.0%} of the tasks; "
             "`ceiling_*`: share of chunks whose shrinkage strength sits at its ceiling. See the module docstring.",
             "", "| regime | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v:.2f}" if c.startswith("ceiling") else f"{v:.1f}"
                                          for c, v in row.items()) + " |" for name, row in mean.iterrows()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", default="hard_first,many_workers,ten_class_small")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = pd.DataFrame([diagnose(n, d) for n in args.regimes.split(",") if n for d in range(args.draws)])
    args.out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.out / "bila_diagnosis.csv", index=False)
    text = report(runs)
    (args.out / "bila_diagnosis.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
