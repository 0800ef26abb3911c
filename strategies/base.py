"""What a fedkd server strategy is: something that turns the global weights of round r-1 into those of round r.

The driver (``strategies/server.py``) owns everything around a round — initial weights, server-side
evaluation, metrics, checkpoints, resume — so a strategy, built-in or a third party's plug-in, only says
what its round sends, what it receives and how it combines the answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from flwr.serverapp import Grid

from fedkd.config import ExperimentConfig


@dataclass
class RoundOutcome:
    """A round's result: new global weights, per-client metrics (partition id -> name -> value), server metrics,
    cumulative queries (for query-based strategies) and why clients that dropped out failed."""

    weights: dict[str, torch.Tensor]
    client_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    server_metrics: dict[str, float] = field(default_factory=dict)
    queries: int | None = None
    failures: list[str] = field(default_factory=list)


class FederatedStrategy(ABC):
    """Base class of fedkd strategies; register subclasses by name (``strategies.registry``)."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def run_round(self, grid: Grid, server_round: int, weights: dict[str, torch.Tensor]) -> RoundOutcome:
        """Run one round against the connected nodes."""
