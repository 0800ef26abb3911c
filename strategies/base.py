"""What a fedkd server strategy is: something that turns the global weights of round r-1 into those of round r.

The driver (``strategies/server.py``) owns everything around a round — initial weights, server-side
evaluation, metrics, checkpoints, resume — so a strategy, built-in or a third party's plug-in, only says
what its round sends, what it receives and how it combines the answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from flwr.serverapp import Grid

from fedkd.config import ExperimentConfig
from fedkd.federation.local import build_model
from fedkd.federation.rounds import RoundOutcome

__all__ = ["FederatedStrategy", "RoundOutcome"]


class FederatedStrategy(ABC):
    """Base class of fedkd strategies; register subclasses by name (``strategies.registry``)."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg

    def build_global_model(self, data_shape: tuple[int, int, int], n_classes: int) -> torch.nn.Module:
        """The model the server evaluates each round (called after seeding); ``client.model`` by default."""
        return build_model(self.cfg, data_shape, n_classes)

    @abstractmethod
    def run_round(self, grid: Grid, server_round: int, weights: dict[str, torch.Tensor]) -> RoundOutcome:
        """Run one round against the connected nodes."""

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What the strategy carries across rounds beyond the global weights (tensors, JSON-safe rest)."""
        return {}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, when a run resumes (a stateless strategy has nothing to do)."""
        del tensors, state
