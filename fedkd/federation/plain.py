"""A federation's rounds as a plain loop: the reference that Flower runs are checked and timed against.

It calls exactly what the ClientApp calls (``ingest_labels`` + ``local_train`` per client) one client after
another in this process and averages weights by example count in partition order, as the FedAvg strategy
does; with the same config it reproduces a simulated or deployed FedAvg run's ``test_acc``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fedkd.config import ExperimentConfig
from fedkd.federation.data import client_data, train_test
from fedkd.federation.local import ClientState, build_model, ingest_labels, local_train
from fedkd.seeding import seed_torch
from fedkd.train import evaluate_accuracy


@dataclass(frozen=True)
class PlainRun:
    round_seconds: list[float]
    test_acc: list[float]


def run_plain_fedavg(cfg: ExperimentConfig) -> PlainRun:
    """FedAvg over all clients for ``federation.num_rounds`` rounds; ``test_acc[r]`` after round r (0: init)."""
    _, test = train_test(cfg)
    x_test, y_test = test.tensors(cfg.run.device)
    seed_torch(cfg.run.seed, "global-init")
    model = build_model(cfg, (test.channels, test.image_size, test.image_size), test.n_classes)
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    states: dict[int, ClientState] = {}
    seconds, accuracy = [], [evaluate_accuracy(model, x_test, y_test)]
    for server_round in range(1, cfg.federation.num_rounds + 1):
        start = time.perf_counter()
        results = []
        for pid in range(cfg.federation.num_clients):
            data = client_data(cfg, pid)
            states[pid] = ingest_labels(cfg, data, states.get(pid), server_round)
            results.append(local_train(cfg, data, states[pid], weights, server_round))
        total = sum(r.num_examples for r in results)
        weights = {k: sum(r.weights[k].float() * (r.num_examples / total) for r in results) for k in weights}
        seconds.append(time.perf_counter() - start)
        model.load_state_dict(weights)
        accuracy.append(evaluate_accuracy(model, x_test, y_test))
    return PlainRun(round_seconds=seconds, test_acc=accuracy)
