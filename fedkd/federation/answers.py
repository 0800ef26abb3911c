"""How a federation answers a query: the clients' answers to one batch combined into one.

``mean`` averages the clients' probabilities (in label mode: their one-hot votes, i.e. vote shares).
``class_aware`` weighs client k's probability (or vote) for class y by its share of the federation's labels of
class y, ``n_k(y) / sum_j n_j(y)``, from the label histograms clients report: under skewed partitions a client
that never saw class y answers y only by accident, and plain averaging lets a few confident specialists
outvote everyone (``benchmarks/results/federated_combiners.csv``, the Dirichlet(0.1) default federation:
class-aware ahead of the mean on every seed in both answer modes). The histogram is all it reveals beyond the
answers. Any aggregator name (``mv``, ``ds``, ``bila``, ...) treats each client as an annotator and its hard
label as a crowd label: the aggregator learns online, batch after batch, how reliable each client is, exactly
as it learns annotators on crowd data. ``coverage`` reads each client with a fixed model built from its label
histogram alone, learning nothing from the answers (``coverage_likelihoods``): an aggregator learns the clients
from their answers to the *queries*, and clients answer the server's synthetic images unlike their own digits, so
what it learns there does not hold on digits (``test_acc/ensemble_as_taught``). Either way the result is a
probability table; a label-only oracle built on it exposes only its argmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from fedkd.aggregation import AGGREGATORS, build_aggregator
from fedkd.config import require_choice

COMBINE_MEAN = "mean"
COMBINE_CLASS_AWARE = "class_aware"
COMBINE_COVERAGE = "coverage"


def combine_choices() -> list[str]:
    return [COMBINE_MEAN, COMBINE_CLASS_AWARE, COMBINE_COVERAGE, *AGGREGATORS]


def coverage_likelihoods(counts: torch.Tensor, items: float, accuracy: float) -> torch.Tensor:
    """``P[m, k, j]``, the chance that client m answers class j to an image of class k, from its label histogram.

    A client knows class k to the degree ``w = n_k / (n_k + items)`` that its labels cover it. On a class it knows
    it answers right with chance ``accuracy``; otherwise (a slip, or a class it never saw) it answers as its
    labels are spread, ``q_j ~ n_j + 1``: ``P[k, j] = w_k * accuracy * [j = k] + (1 - w_k * accuracy) * q_j``.
    So an answer j is strong evidence against the *other* classes the client knows, and says little about the
    classes it never saw, where it would have answered one of its own classes anyway: at Dirichlet(0.1) a
    client that saw two or three classes answers one of them for everything, which outvotes the one or two
    clients that know the class under a plain or class-aware vote.
    """
    known = counts / (counts + items)
    spread = (counts + 1.0) / (counts + 1.0).sum(dim=1, keepdim=True)
    right = (known * accuracy).unsqueeze(2)
    return (1.0 - right) * spread.unsqueeze(1) + right * torch.eye(counts.shape[1])


class AnswerCombiner:
    """Combines ``{partition_id: answers}`` for one query batch into (N, C) probabilities.

    ``answers`` are class indices (N,) in label mode or probabilities (N, C) in proba mode. Task ids keep
    counting across calls so an online aggregator never mistakes a new batch for an old one.
    """

    def __init__(self, method: str, n_classes: int, seed: int = 0, coverage_items: float = 30.0,
                 coverage_accuracy: float = 0.9) -> None:
        require_choice("combine", method, combine_choices())
        self.method, self.n_classes = method, n_classes
        self.coverage_items, self.coverage_accuracy = coverage_items, coverage_accuracy
        fixed = method in (COMBINE_MEAN, COMBINE_CLASS_AWARE, COMBINE_COVERAGE)
        self.aggregator = None if fixed else build_aggregator(method, n_classes, seed=seed)
        self.tasks_seen = 0
        self.class_weights: dict[int, torch.Tensor] = {}
        self.likelihoods: dict[int, torch.Tensor] = {}
        self.label_counts: dict[int, list[int]] = {}

    def set_label_counts(self, counts: dict[int, list[int]]) -> None:
        """The clients' label histograms (partition id -> count per class), for ``class_aware`` and ``coverage``."""
        self.label_counts = dict(counts)
        table = torch.tensor([counts[pid] for pid in sorted(counts)], dtype=torch.float32).reshape(-1, self.n_classes)
        shares = table / table.sum(dim=0, keepdim=True).clamp_min(1.0)
        self.class_weights = {pid: shares[i] for i, pid in enumerate(sorted(counts))}
        likelihoods = coverage_likelihoods(table, self.coverage_items, self.coverage_accuracy)
        self.likelihoods = {pid: likelihoods[i] for i, pid in enumerate(sorted(counts))}

    def __call__(self, answers: dict[int, torch.Tensor]) -> torch.Tensor:
        if not answers:
            raise ValueError("no client answered this query batch")
        ordered = [answers[pid] for pid in sorted(answers)]
        if self.method in (COMBINE_CLASS_AWARE, COMBINE_COVERAGE):
            missing = sorted(set(answers) - set(self.class_weights))
            if missing:
                raise ValueError(f"{self.method} combination has no label counts for clients {missing}")
        if self.method == COMBINE_COVERAGE:
            # an answer given as probabilities is a mixture over the labels it could be
            log_posterior = sum(torch.log(_as_probabilities(answers[pid], self.n_classes) @ self.likelihoods[pid].T)
                                for pid in answers)
            return torch.softmax(log_posterior, dim=1)
        if self.method == COMBINE_CLASS_AWARE:
            weighted = sum(_as_probabilities(answers[pid], self.n_classes) * self.class_weights[pid] for pid in answers)
            return weighted / weighted.sum(dim=1, keepdim=True).clamp_min(1e-12)
        if self.aggregator is None:
            return torch.stack([_as_probabilities(a, self.n_classes) for a in ordered]).mean(dim=0)
        chunk = self._chunk(answers)
        self.aggregator.partial_fit(chunk)
        proba = self.aggregator.predict_proba(chunk)
        self.tasks_seen += len(ordered[0])
        return torch.tensor(proba.to_numpy(dtype=np.float32))

    def read(self, answers: dict[int, torch.Tensor]) -> torch.Tensor:
        """``answers`` combined as this combiner stands, learning nothing from them: for an aggregator, with the
        clients' reliabilities as it learnt them from the answers it has combined so far. The fixed combiners (the
        averages, ``coverage``) learn nothing, so this is their ``__call__``."""
        if self.aggregator is None:
            return self(answers)
        proba = self.aggregator.predict_proba(self._chunk(answers))
        return torch.tensor(proba.to_numpy(dtype=np.float32))

    def _chunk(self, answers: dict[int, torch.Tensor]) -> pd.DataFrame:
        """The clients' hard labels as crowd labels of new tasks (numbered on from ``tasks_seen``)."""
        labels = [answers[pid] if answers[pid].dim() == 1 else answers[pid].argmax(dim=1) for pid in sorted(answers)]
        n = len(labels[0])
        return pd.DataFrame({"task": np.tile(np.arange(self.tasks_seen, self.tasks_seen + n), len(labels)),
                             "worker": np.repeat([f"client-{pid}" for pid in sorted(answers)], n),
                             "label": torch.cat(labels).numpy()})

    def state_dict(self) -> dict[str, Any]:
        return {"tasks_seen": self.tasks_seen, "aggregator": self.aggregator.state_dict() if self.aggregator else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tasks_seen = int(state["tasks_seen"])
        if self.aggregator is not None:
            self.aggregator.load_state_dict(state["aggregator"])


def _as_probabilities(answer: torch.Tensor, n_classes: int) -> torch.Tensor:
    if answer.dim() == 1:
        return torch.nn.functional.one_hot(answer.long(), n_classes).float()
    return answer.float()
