"""What the one-shot student would learn from the same queries with other labels: a diagnostic, not a method.

``test_acc/ensemble_as_taught`` says the shipped one-shot student learns from a committee that Dawid-Skene read
from the prior's images, far worse than the same clients read on digits. This benchmark asks how much of the
student's gap that reading costs, holding the queries fixed. For each seed, one round of ``simulations/oneshot.toml``
through the plain loop, its combiner recording every client's answer to every query; then a student from the run's
own initial weights trains again on the run's stored queries (the store stage alone, as the config sets it:
epochs, augmentation, class balance), once per labelling of those queries:

- ``as_run``: the labels the run's Dawid-Skene gave as the waves came (what the shipped student learnt);
- ``test_reliabilities``: the labels a Dawid-Skene gives them after learning the clients from their answers to the
  *test* digits (the reading behind ``test_acc/ensemble``). A measurement only: the server never has those digits.

The gap between the two rows is what the reading of the clients on the queries costs; the gap between
``test_reliabilities`` and the committee is what the queries' images cost with the clients read as on digits.

    python benchmarks/oneshot_labels.py [--seeds 0 1 2]

Writes ``benchmarks/results/oneshot_labels.csv`` (a row per seed and labelling; seeds already there are skipped).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "benchmarks" / "results" / "oneshot_labels.csv"


def run_seed(seed: int) -> list[dict[str, object]]:
    from fedkd.config import load_config
    from fedkd.distill.store import AnswerStore, train_on_store
    from fedkd.federation.answers import AnswerCombiner
    from fedkd.federation.data import client_data
    from fedkd.federation.local import answer_queries
    from fedkd.federation.plain import QUERY_STRATEGIES, PlainLink
    from fedkd.federation.query_server import QueryServer
    from fedkd.seeding import seed_torch, torch_generator
    from fedkd.train import evaluate_accuracy

    class RecordingCombiner(AnswerCombiner):
        """The run's own combiner (as the server built it from the config), keeping every batch of answers it
        combines."""

        def __init__(self, built: AnswerCombiner) -> None:
            vars(self).update(vars(built))
            self.recorded: list[dict[int, torch.Tensor]] = []

        def __call__(self, answers: dict[int, torch.Tensor]) -> torch.Tensor:
            self.recorded.append({pid: a.clone() for pid, a in answers.items()})
            return super().__call__(answers)

    cfg = load_config(ROOT / "simulations" / "oneshot.toml", {"run.seed": seed})
    server = QueryServer(cfg, QUERY_STRATEGIES[cfg.federation.strategy])
    server.combiner = RecordingCombiner(server.combiner)
    seed_torch(cfg.run.seed, "global-init")
    student = server.build_student()
    initial = copy.deepcopy(student.state_dict())
    link = PlainLink(cfg)
    outcome = server.run_round(link, 1, copy.deepcopy(initial))
    student.load_state_dict(outcome.weights)
    run = {"seed": seed, "student_run": evaluate_accuracy(student, server.x_test, server.y_test),
           "committee": outcome.server_metrics["test_acc/ensemble"],
           "committee_as_taught": outcome.server_metrics["test_acc/ensemble_as_taught"]}

    test_answers = {pid: answer_queries(cfg, client_data(cfg, pid), state, server.x_test, cfg.distill.mode)
                    for pid, state in sorted(link.states.items())}
    on_digits = server.evaluation_combiner(proba=False)  # the fresh combiner behind test_acc/ensemble
    on_digits(test_answers)
    store = server.distiller.store
    queries = store.inputs(torch.arange(len(store)))
    relabelled_by_digits = torch.cat([on_digits.read(a) for a in server.combiner.recorded]).argmax(1)
    if len(relabelled_by_digits) != len(store):  # the store keeps every answered query, in the order asked
        raise RuntimeError(f"{len(relabelled_by_digits)} recorded answers for {len(store)} stored queries")
    labellings = {"as_run": store.answers, "test_reliabilities": relabelled_by_digits}
    rows = []
    for name, labels in labellings.items():
        relabelled = AnswerStore()
        relabelled.add(queries, labels)
        student.load_state_dict(initial)
        train_on_store(student, relabelled, server.distiller.store_training, cfg.distill.mode,
                       torch_generator(cfg.run.seed, "oneshot-labels", name))
        rows.append({**run, "labels": name, "agreement_with_run": float((labels == store.answers).float().mean()),
                     "test_acc": evaluate_accuracy(student, server.x_test, server.y_test)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["seed"])
    for seed in args.seeds:
        if seed in set(done["seed"]):
            continue
        done = pd.concat([done, pd.DataFrame(run_seed(seed))], ignore_index=True)
        done.sort_values(["seed", "labels"], ignore_index=True).to_csv(CSV, index=False)
    print(done.groupby("labels")[["test_acc", "committee", "committee_as_taught"]].mean().to_string())


if __name__ == "__main__":
    main()
