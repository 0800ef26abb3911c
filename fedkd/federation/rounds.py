"""What a server round is made of, whoever carries the messages: the link to the clients and the round's outcome.

A query strategy's round is written once (``fedkd.federation.query_server``) against a ``ClientLink``: Flower
messages in a simulation or a deployment (``strategies/``), or plain calls of the client functions in this
process (``fedkd.federation.plain``), the reference that the Flower layer is timed and checked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass(frozen=True)
class Failure:
    """One node's failure in one exchange: the node (or, for a partition with no connected node, its name), and its
    error reply or that it stayed silent. A node may fail several exchanges of a round; ``clients_failed`` counts
    it once."""

    node: int | str
    reason: str

    def __str__(self) -> str:
        return f"node {self.node}: {self.reason}"

    __repr__ = __str__


@dataclass
class RoundOutcome:
    """A round's result: new global weights, per-client metrics (partition id -> name -> value), server metrics,
    cumulative queries (for query-based strategies), the payload bytes sent to and received from clients, and why
    clients that dropped out failed."""

    weights: dict[str, torch.Tensor]
    client_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    server_metrics: dict[str, float] = field(default_factory=dict)
    queries: int | None = None
    failures: list[Failure] = field(default_factory=list)
    bytes_down: int = 0
    bytes_up: int = 0


@dataclass
class TrainReplies:
    """What the clients reported after training their own models: metrics and label histograms per partition, and,
    for the references only (``fedkd.federation.references``), their weights and example counts."""

    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    label_counts: dict[int, list[int]] = field(default_factory=dict)
    weights: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    num_examples: dict[int, int] = field(default_factory=dict)


@dataclass
class Traffic:
    """Payload bytes (tensors: queries, answers, weights) sent down to and up from clients, and failures."""

    bytes_down: int = 0
    bytes_up: int = 0
    failures: list[Failure] = field(default_factory=list)


def nbytes(*tensors: torch.Tensor) -> int:
    """Bytes the tensors occupy as sent (their element type decides: uint8 images, compact answers)."""
    return sum(t.numel() * t.element_size() for t in tensors)


class ClientLink(Protocol):
    """How a query strategy reaches its clients in one round; ``traffic`` accumulates over the round."""

    traffic: Traffic

    def train(self, server_round: int, partitions: list[int]) -> TrainReplies:
        """Each client takes in its labels and trains its own model; its weights stay with it."""

    def ask(self, server_round: int, partitions: list[int], codes: torch.Tensor, scale: torch.Tensor,
            mode: str) -> dict[int, torch.Tensor]:
        """Every client's answers (compact, see ``fedkd.payload``) to the encoded queries, by partition id."""
