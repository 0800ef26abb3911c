"""Which clients take part in a round: a fresh sample each round, drawn from the run seed.

Researchers simulate hundreds of clients and let a fraction take part in each round. The sample depends on the
seed and the round only (never on which nodes answered first), so a run and its resumed continuation, a Flower
simulation and the plain loop all work with the same clients.
"""

from __future__ import annotations

import math

from fedkd.config import ExperimentConfig
from fedkd.seeding import numpy_rng


def clients_per_round(cfg: ExperimentConfig) -> int:
    """``federation.clients_per_round``, or the ``fraction_train`` share of the clients (at least one)."""
    fed = cfg.federation
    return fed.clients_per_round or max(1, math.ceil(fed.fraction_train * fed.num_clients))


def sampled_partitions(cfg: ExperimentConfig, server_round: int) -> list[int]:
    """The partition ids that take part in ``server_round``, sorted; all of them when every client takes part."""
    n, k = cfg.federation.num_clients, clients_per_round(cfg)
    if k >= n:
        return list(range(n))
    chosen = numpy_rng(cfg.run.seed, "client-sample", server_round).choice(n, size=k, replace=False)
    return sorted(int(pid) for pid in chosen)
