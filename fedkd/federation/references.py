"""What a data-free student is judged against, computed on the very clients it learnt from.

The literature judges one-shot federated distillation against one-shot FedAvg (the clients' weights averaged
once), the clients' combined answer (the committee the student learns from, in label and probability mode) and
the best single client. These references need what a data-free client otherwise never reveals: its weights
(FedAvg) or probabilities (a label-mode run). They are a *measurement* of a simulation, switched on by
``query.eval_references``; they never reach the student, and a node whose own policy allows labels only
(``answer-mode = "label"``) reveals neither, so its run logs no such reference.
"""

from __future__ import annotations

import torch

from fedkd.config import ExperimentConfig
from fedkd.federation.local import client_architecture


def average_weights(weights: list[dict[str, torch.Tensor]], num_examples: list[int]) -> dict[str, torch.Tensor]:
    """FedAvg's average: each client's weights weighted by its number of training examples."""
    total = sum(num_examples)
    return {k: sum(w[k].float() * (n / total) for w, n in zip(weights, num_examples, strict=True)) for k in weights[0]}


def weights_average_meaningfully(cfg: ExperimentConfig) -> bool:
    """Whether averaging the clients' own models is one-shot FedAvg: one architecture, trained from one shared
    initialisation (``client.shared_init``; independently initialised networks do not average into a model)."""
    architectures = {client_architecture(cfg, pid) for pid in range(cfg.federation.num_clients)}
    return len(architectures) == 1 and cfg.client.shared_init


def reveals_weights_for_reference(cfg: ExperimentConfig) -> bool:
    """Whether a data-free client sends its weights after training: only to measure one-shot FedAvg
    (``query.eval_references``), and only where averaging them means something. A node may still refuse
    (``fedkd_clients.app.reveals_weights``: a labels-only policy)."""
    return cfg.query.eval_references and weights_average_meaningfully(cfg)


def accuracy_of_answers(answers: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of one client's answers (labels, or probabilities whose argmax is its label)."""
    labels = answers if answers.dim() == 1 else answers.argmax(dim=1)
    return float((labels.long().to(y.device) == y).float().mean())
