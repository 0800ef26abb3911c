"""FedAvg: the reference strategy, Flower's own ``FedAvg`` driven one round at a time.

fedkd samples the round's clients (``fedkd.federation.sampling``, seeded per round) and sends them the global
weights (``FlowerLink``); Flower's strategy averages the replies by example count. fedkd sorts the replies by
partition id before averaging, because a float sum depends on its order and Ray returns replies in
whatever order clients finish — without the sort, two runs with the same seed would differ in the last bits.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from flwr.app import ArrayRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from fedkd.config import ExperimentConfig
from fedkd.errors import ConfigError
from fedkd.federation.rounds import nbytes
from fedkd.federation.sampling import sampled_partitions
from fedkd_clients.protocol import ARRAYS, CONFIG, METRICS, NUM_EXAMPLES, PARTITION, instruction_config
from fedkd_strategies.base import FederatedStrategy, RoundOutcome
from fedkd_strategies.messaging import FlowerLink, reply_metrics


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
        # Only aggregate_train is used: fedkd samples the clients itself and evaluates on the server, so Flower's
        # sampling and evaluation settings stay at their defaults (a 0 fraction_evaluate would only print a warning).
        self.flower = self.flower_class(weighted_by_key=NUM_EXAMPLES, arrayrecord_key=ARRAYS)
        self.link: FlowerLink | None = None

    def run_round(self, grid: Grid, server_round: int, weights: dict[str, torch.Tensor]) -> RoundOutcome:
        if self.link is None or self.link.grid is not grid:
            self.link = FlowerLink(grid, self.cfg)
        self.link.start_round()
        arrays = ArrayRecord.from_torch_state_dict(weights)
        content = RecordDict({ARRAYS: arrays, CONFIG: instruction_config(self.cfg, server_round)})
        size = nbytes(*weights.values())
        replies = self.link.send(MessageType.TRAIN, sampled_partitions(self.cfg, server_round), lambda pid: content,
                                 lambda pid: size)
        self.link.traffic.bytes_up += size * len(replies)
        aggregated, _ = self.flower.aggregate_train(server_round, list(replies.values()))
        return RoundOutcome(
            weights=aggregated.to_torch_state_dict() if aggregated is not None else weights,
            client_metrics={pid: reply_metrics(msg) for pid, msg in replies.items()},
            failures=self.link.traffic.failures,
            bytes_down=self.link.traffic.bytes_down,
            bytes_up=self.link.traffic.bytes_up,
        )
