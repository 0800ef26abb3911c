"""Flower messages to the sampled clients, with replies ordered by partition id and failures named.

``FlowerLink`` is the ``ClientLink`` of a Flower round: it knows which node holds which partition (from earlier
replies, or from a roll call — a ``query`` message without queries — when a sampled partition's node is not known
yet; a round in which every client takes part needs none), sends one message per sampled client,
counts the payload bytes each way and turns error replies and timeouts into one ``Failure`` per node, so a round
counts the clients that failed rather than the lines that describe them. Strategies
(FedAvg and the query strategies) use it, so every strategy samples, addresses and counts the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from flwr.app import ArrayRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedkd.config import ExperimentConfig
from fedkd.federation.rounds import Failure, Traffic, TrainReplies, nbytes
from fedkd_clients.protocol import (
    ANSWERS,
    ARRAYS,
    CODES,
    CONFIG,
    LABEL_COUNTS,
    METRICS,
    NUM_EXAMPLES,
    PARTITION,
    QUERIES,
    QUERY_MODE,
    SCALE,
    TENSOR,
    instruction_config,
)

__all__ = ["Failure", "FlowerLink", "failures_of", "reply_metrics"]


class FlowerLink:
    """Messages to the partitions of a federation over a Flower ``Grid`` (simulation or SuperLink)."""

    def __init__(self, grid: Grid, cfg: ExperimentConfig) -> None:
        self.grid, self.cfg = grid, cfg
        self.nodes: dict[int, int] = {}  # partition id -> node id
        self.traffic = Traffic()

    def start_round(self) -> None:
        self.traffic = Traffic()

    def node_of(self, partitions: list[int]) -> dict[int, int]:
        """Node ids of ``partitions``; a roll call learns the partitions of nodes not seen before. When every
        partition takes part no roll call is needed: the message goes to every connected node, under negative
        placeholder keys (the replies name their partitions)."""
        if len(partitions) == self.cfg.federation.num_clients:
            return {-1 - i: node for i, node in enumerate(sorted(self.grid.get_node_ids()))}
        known = set(self.nodes.values())
        unseen = [node for node in sorted(self.grid.get_node_ids()) if node not in known]
        if unseen and any(pid not in self.nodes for pid in partitions):
            config = instruction_config(self.cfg, 0)
            messages = [Message(RecordDict({CONFIG: config}), dst_node_id=node, message_type=MessageType.QUERY)
                        for node in unseen]
            for reply in self.grid.send_and_receive(messages, timeout=self.cfg.federation.round_timeout):
                if not reply.has_error():
                    self.nodes[int(reply.content[METRICS][PARTITION])] = reply.metadata.src_node_id
        self.traffic.failures += [Failure(f"of partition {pid}", "no connected node holds it")
                                  for pid in partitions if pid not in self.nodes]
        return {pid: self.nodes[pid] for pid in partitions if pid in self.nodes}

    def send(self, message_type: str, partitions: list[int], content: Callable[[int], RecordDict],
             down: Callable[[int], int]) -> dict[int, Message]:
        """Send ``content(pid)`` to each partition's node (``down(pid)`` payload bytes), wait for the replies.

        ``content`` and ``down`` must not depend on ``pid`` when every partition takes part (then the nodes'
        partitions are learnt from their replies)."""
        nodes = self.node_of(partitions)
        messages = [Message(content(pid), dst_node_id=node, message_type=message_type) for pid, node in nodes.items()]
        self.traffic.bytes_down += sum(down(pid) for pid in nodes)
        timeout = self.cfg.federation.round_timeout
        received = list(self.grid.send_and_receive(messages, timeout=timeout))
        self.traffic.failures += failures_of(messages, received, timeout)
        replies: dict[int, Message] = {}
        for msg in received:
            if not msg.has_error():
                pid = int(msg.content[METRICS][PARTITION])
                self.nodes[pid] = msg.metadata.src_node_id
                replies[pid] = msg
        return dict(sorted(replies.items()))

    def train(self, server_round: int, partitions: list[int]) -> TrainReplies:
        config = instruction_config(self.cfg, server_round)
        replies = self.send(MessageType.TRAIN, partitions, lambda pid: RecordDict({CONFIG: config}), lambda pid: 0)
        weights = {pid: msg.content[ARRAYS].to_torch_state_dict() for pid, msg in replies.items()
                   if ARRAYS in msg.content}
        self.traffic.bytes_up += sum(nbytes(*w.values()) for w in weights.values())
        return TrainReplies(
            metrics={pid: reply_metrics(msg) for pid, msg in replies.items()},
            label_counts={pid: list(msg.content[METRICS][LABEL_COUNTS]) for pid, msg in replies.items()},
            weights=weights,
            num_examples={pid: int(replies[pid].content[METRICS][NUM_EXAMPLES]) for pid in weights},
        )

    def ask(self, server_round: int, partitions: list[int], codes: torch.Tensor, scale: torch.Tensor,
            mode: str) -> dict[int, torch.Tensor]:
        config = instruction_config(self.cfg, server_round)
        config[QUERY_MODE] = mode
        content = RecordDict({CONFIG: config, QUERIES: ArrayRecord.from_torch_state_dict({CODES: codes, SCALE: scale})})
        replies = self.send(MessageType.QUERY, partitions, lambda pid: content, lambda pid: nbytes(codes, scale))
        answers = {pid: msg.content[ANSWERS].to_torch_state_dict()[TENSOR] for pid, msg in replies.items()}
        self.traffic.bytes_up += sum(nbytes(a) for a in answers.values())
        return answers


def failures_of(sent: list[Message], received: list[Message], timeout: float) -> list[Failure]:
    """A :class:`Failure` for every error reply and for every node of ``sent`` that did not reply."""
    failures = [Failure(msg.metadata.src_node_id, msg.error.reason) for msg in received if msg.has_error()]
    replied = {msg.metadata.src_node_id for msg in received}
    failures += [Failure(msg.metadata.dst_node_id, f"no reply within {timeout:.0f} s")
                 for msg in sent if msg.metadata.dst_node_id not in replied]
    return failures


def reply_metrics(msg: Message) -> dict[str, float]:
    """A client reply's metrics, without the bookkeeping keys (partition id, example count, label counts)."""
    return {k: float(v) for k, v in msg.content[METRICS].items() if k not in (PARTITION, NUM_EXAMPLES, LABEL_COUNTS)}
