"""FedAvg: the reference strategy, Flower's own ``FedAvg`` driven one round at a time.

Flower's strategy picks the nodes and averages weights by example count; fedkd sorts the replies by
partition id before averaging, because a float sum depends on its order and Ray returns replies in
whatever order clients finish — without the sort, two runs with the same seed would differ in the last bits.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from clients.protocol import ARRAYS, METRICS, NUM_EXAMPLES, PARTITION, instruction_config
from fedkd.config import ExperimentConfig
from fedkd.errors import ConfigError
from strategies.base import FederatedStrategy, RoundOutcome
from strategies.messaging import failures_of, reply_metrics


class OrderedReplies:
    """Mixin for a Flower strategy: aggregate training replies in partition order, whatever order they came in."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return super().aggregate_train(server_round, sorted(replies, key=_reply_order))


class _OrderedFedAvg(OrderedReplies, FlowerFedAvg):
    pass


def _reply_order(msg: Message) -> tuple[int, int]:
    if msg.has_content() and METRICS in msg.content:
        return (0, int(msg.content[METRICS][PARTITION]))
    return (1, msg.metadata.src_node_id)


class FedAvg(FederatedStrategy):
    """Weighted averaging of the clients' locally trained weights (McMahan et al., 2017).

    Subclasses can swap the combination rule by pointing ``flower_class`` at another Flower strategy with
    FedAvg's constructor (``FedMedian``, ``FedTrimmedAvg``, ...), mixed with ``OrderedReplies``.
    """

    flower_class: type[FlowerFedAvg] = _OrderedFedAvg

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        if cfg.client.architectures:
            raise ConfigError(
                f"federation.strategy = {cfg.federation.strategy!r} averages weights, so all clients need one model; "
                f"client.architectures = {list(cfg.client.architectures)} is for data-free strategies"
            )
        fed = cfg.federation
        self.flower = self.flower_class(
            fraction_train=fed.fraction_train,
            fraction_evaluate=0.0,
            min_train_nodes=1,
            min_available_nodes=fed.num_clients,
            weighted_by_key=NUM_EXAMPLES,
            arrayrecord_key=ARRAYS,
        )

    def run_round(self, grid: Grid, server_round: int, weights: dict[str, torch.Tensor]) -> RoundOutcome:
        arrays = ArrayRecord.from_torch_state_dict(weights)
        config = instruction_config(self.cfg, server_round)
        messages = list(self.flower.configure_train(server_round, arrays, config, grid))
        timeout = self.cfg.federation.round_timeout
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        aggregated, _ = self.flower.aggregate_train(server_round, replies)
        client_metrics = {
            int(m.content[METRICS][PARTITION]): reply_metrics(m)
            for m in sorted(replies, key=_reply_order)
            if m.has_content()
        }
        new_weights = aggregated.to_torch_state_dict() if aggregated is not None else weights
        failures = failures_of(messages, replies, timeout)
        return RoundOutcome(weights=new_weights, client_metrics=client_metrics, failures=failures)
