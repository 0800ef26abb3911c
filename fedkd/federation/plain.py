"""A federation's rounds as a plain loop: the reference that Flower runs are checked and timed against.

It calls exactly what the ClientApp calls, one sampled client after another in this process: for FedAvg
``ingest_labels`` + ``local_train`` and an average of the weights by example count in partition order; for the
query strategies the same ``QueryServer`` round as the Flower strategy, over a ``PlainLink`` that calls each
client's ``own_model_round`` and ``answer_queries`` directly, with the same payload codes. With the same config it
reproduces a simulated or deployed run's ``test_acc``, so the ratio of their round times is what Flower and Ray
cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from fedkd.config import ExperimentConfig
from fedkd.federation.data import client_data, train_test
from fedkd.federation.local import (
    ClientState,
    answer_queries,
    build_model,
    ingest_labels,
    label_counts,
    local_train,
    own_model_round,
)
from fedkd.federation.references import average_weights, reveals_weights_for_reference
from fedkd.federation.rounds import Traffic, TrainReplies, nbytes
from fedkd.federation.sampling import sampled_partitions
from fedkd.payload import compact_answers, decode_images
from fedkd.seeding import seed_torch
from fedkd.train import evaluate_accuracy

QUERY_STRATEGIES = {"feddf": "real", "fedtandem": "tandemgan", "fedaedm": "aedm"}


@dataclass(frozen=True)
class PlainRun:
    round_seconds: list[float]
    test_acc: list[float]
    bytes_down: list[int] = field(default_factory=list)
    bytes_up: list[int] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)  # query strategies: the budget spent by the end of round r
    server_metrics: list[dict[str, float]] = field(default_factory=list)


@dataclass
class PlainLink:
    """The ``ClientLink`` of the plain loop: the clients' own functions, called in this process."""

    cfg: ExperimentConfig
    states: dict[int, ClientState] = field(default_factory=dict)
    traffic: Traffic = field(default_factory=Traffic)

    def train(self, server_round: int, partitions: list[int]) -> TrainReplies:
        replies = TrainReplies()
        for pid in partitions:
            data = client_data(self.cfg, pid)
            self.states[pid] = state = own_model_round(self.cfg, data, self.states.get(pid), server_round)
            replies.metrics[pid] = dict(state.last_metrics)
            replies.label_counts[pid] = label_counts(state.labels, data.n_classes)
            if reveals_weights_for_reference(self.cfg):
                replies.weights[pid] = state.model
                replies.num_examples[pid] = int((state.labels >= 0).sum())
                self.traffic.bytes_up += nbytes(*state.model.values())
        return replies

    def ask(self, server_round: int, partitions: list[int], codes: torch.Tensor, scale: torch.Tensor,
            mode: str) -> dict[int, torch.Tensor]:
        x = decode_images(codes, scale)
        answers = {}
        for pid in partitions:
            data = client_data(self.cfg, pid)
            answers[pid] = compact_answers(answer_queries(self.cfg, data, self.states[pid], x, mode), data.n_classes)
        self.traffic.bytes_down += nbytes(codes, scale) * len(partitions)
        self.traffic.bytes_up += sum(nbytes(a) for a in answers.values())
        return answers


def run_plain(cfg: ExperimentConfig) -> PlainRun:
    """``federation.strategy``'s rounds as a plain loop (FedAvg or a query strategy)."""
    if cfg.federation.strategy in QUERY_STRATEGIES:
        return run_plain_query(cfg)
    return run_plain_fedavg(cfg)


def run_plain_fedavg(cfg: ExperimentConfig) -> PlainRun:
    """FedAvg over the sampled clients for ``federation.num_rounds`` rounds; ``test_acc[r]`` after round r (0: init)."""
    _, test = train_test(cfg)
    x_test, y_test = test.tensors(cfg.run.device)
    seed_torch(cfg.run.seed, "global-init")
    model = build_model(cfg, (test.channels, test.image_size, test.image_size), test.n_classes)
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    states: dict[int, ClientState] = {}
    run = PlainRun(round_seconds=[], test_acc=[evaluate_accuracy(model, x_test, y_test)])
    for server_round in range(1, cfg.federation.num_rounds + 1):
        start = time.perf_counter()
        results = []
        for pid in sampled_partitions(cfg, server_round):
            data = client_data(cfg, pid)
            states[pid] = ingest_labels(cfg, data, states.get(pid), server_round)
            results.append(local_train(cfg, data, states[pid], weights, server_round))
        size = nbytes(*weights.values())
        weights = average_weights([r.weights for r in results], [r.num_examples for r in results])
        run.round_seconds.append(time.perf_counter() - start)
        run.bytes_down.append(size * len(results))
        run.bytes_up.append(size * len(results))
        model.load_state_dict(weights)
        run.test_acc.append(evaluate_accuracy(model, x_test, y_test))
    return run


def run_plain_query(cfg: ExperimentConfig) -> PlainRun:
    """A query strategy's rounds (``QueryServer``) over a ``PlainLink``; ``test_acc[r]`` after round r (0: init)."""
    from fedkd.federation.query_server import QueryServer

    _, test = train_test(cfg)
    x_test, y_test = test.tensors(cfg.run.device)
    server = QueryServer(cfg, QUERY_STRATEGIES[cfg.federation.strategy])
    seed_torch(cfg.run.seed, "global-init")
    student = server.build_student()
    link = PlainLink(cfg)
    run = PlainRun(round_seconds=[], test_acc=[evaluate_accuracy(student, x_test, y_test)])
    weights = {k: v.detach().clone() for k, v in student.state_dict().items()}
    for server_round in range(1, cfg.federation.num_rounds + 1):
        start = time.perf_counter()
        link.traffic = Traffic()
        outcome = server.run_round(link, server_round, weights)
        weights = outcome.weights
        run.round_seconds.append(time.perf_counter() - start)
        run.bytes_down.append(outcome.bytes_down)
        run.bytes_up.append(outcome.bytes_up)
        run.queries.append(outcome.queries)
        run.server_metrics.append(outcome.server_metrics)
        student.load_state_dict(weights)
        run.test_acc.append(evaluate_accuracy(student, x_test, y_test))
    return run
