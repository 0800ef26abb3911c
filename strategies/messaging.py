"""Sending one instruction to every connected node and collecting what came back, with failures named.

Data-free strategies talk to all nodes several times per round (train, then many query batches); this is
the one place that builds those messages, orders replies by partition id (so results never depend on the
order nodes answer in) and turns error replies and timeouts into one ``Failure`` per node, so a round can
count the clients that failed rather than the lines that describe them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from clients.protocol import LABEL_COUNTS, METRICS, NUM_EXAMPLES, PARTITION


@dataclass(frozen=True)
class Failure:
    """One node's failure in one exchange: the node, and its error reply or that it stayed silent."""

    node: int
    reason: str

    def __str__(self) -> str:
        return f"node {self.node}: {self.reason}"

    __repr__ = __str__


@dataclass
class Broadcast:
    """Replies with content, keyed by partition id, and a failure per node that failed or stayed silent."""

    replies: dict[int, Message] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def broadcast(grid: Grid, message_type: str, content: RecordDict, timeout: float) -> Broadcast:
    """Send ``content`` as a ``message_type`` message to every connected node and wait up to ``timeout`` s."""
    nodes = sorted(grid.get_node_ids())
    messages = [Message(content=content, dst_node_id=node, message_type=message_type) for node in nodes]
    received = list(grid.send_and_receive(messages, timeout=timeout))
    result = Broadcast(failures=failures_of(messages, received, timeout))
    for msg in received:
        if not msg.has_error():
            result.replies[int(msg.content[METRICS][PARTITION])] = msg
    result.replies = dict(sorted(result.replies.items()))
    return result


def failures_of(sent: list[Message], received: list[Message], timeout: float) -> list[Failure]:
    """A :class:`Failure` for every error reply and for every node of ``sent`` that did not reply."""
    failures = [Failure(msg.metadata.src_node_id, msg.error.reason) for msg in received if msg.has_error()]
    replied = {msg.metadata.src_node_id for msg in received}
    failures += [
        Failure(msg.metadata.dst_node_id, f"no reply within {timeout:.0f} s")
        for msg in sent
        if msg.metadata.dst_node_id not in replied
    ]
    return failures


def reply_metrics(msg: Message) -> dict[str, float]:
    """A client reply's metrics, without the bookkeeping keys (partition id, example count, label counts)."""
    return {k: float(v) for k, v in msg.content[METRICS].items() if k not in (PARTITION, NUM_EXAMPLES, LABEL_COUNTS)}
