"""Data-free federated distillation as Flower strategies: thin adapters over ``fedkd.federation.query_server``.

The server never sees client data or weights, only answers to queries; the round itself (train the sampled
clients, ask them in waves, combine their answers, distil, evaluate) is written once, Flower-free, in
``QueryServer``. These classes only carry it over Flower messages (``FlowerLink``).

* ``fedtandem``: queries from a TandemGAN generator, no data at all.
* ``fedaedm``: queries decoded from a diffusion prior of public data, steered to where the student is unsure.
* ``feddf``: queries drawn from unlabeled public data (``query.public_dataset``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from flwr.serverapp import Grid

from fedkd.config import ExperimentConfig
from fedkd.federation.query_server import QueryServer
from fedkd_strategies.base import FederatedStrategy, RoundOutcome
from fedkd_strategies.messaging import FlowerLink


class QueryDistillation(FederatedStrategy):
    """Distil the clients' knowledge into a global student through queries only (see the module docstring)."""

    method: ClassVar[str]

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        self.server = QueryServer(cfg, self.method)
        self.link: FlowerLink | None = None

    def build_global_model(self, data_shape: tuple[int, int, int], n_classes: int) -> torch.nn.Module:
        return self.server.build_student()

    def run_round(self, grid: Grid, server_round: int, weights: dict[str, torch.Tensor]) -> RoundOutcome:
        if self.link is None or self.link.grid is not grid:
            self.link = FlowerLink(grid, self.cfg)
        self.link.start_round()
        return self.server.run_round(self.link, server_round, weights)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return self.server.state()

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.server.load_state(tensors, state)


class FedTandem(QueryDistillation):
    """Data-free: TandemGAN's generator makes the queries (``[tandemgan]`` settings)."""

    method = "tandemgan"


class FedAEDM(QueryDistillation):
    """Data-free with a public-data prior: AEDM-steered diffusion samples make the queries (``[aedm]`` settings).

    The prior must not have learnt the clients' data source (``load_aedm_prior`` refuses it), so the server
    still holds no private data, only a generative model of related public data.
    """

    method = "aedm"


class FedDF(QueryDistillation):
    """Ensemble distillation on unlabeled public data (``query.public_dataset``), through answers only."""

    method = "real"
