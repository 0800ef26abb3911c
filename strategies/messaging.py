"""Sending one instruction to every connected node and collecting what came back, with failures named.

Data-free strategies talk to all nodes several times per round (train, then many query batches); this is
the one place that builds those messages, orders replies by partition id (so results never depend on the
order nodes answer in) and turns error replies and timeouts into readable failure lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from clients.protocol import LABEL_COUNTS, METRICS, NUM_EXAMPLES, PARTITION


@dataclass
class Broadcast:
    """Replies with content, keyed by partition id, and a line per node that failed or stayed silent."""

    replies: dict[int, Message] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def broadcast(grid: Grid, message_type: str, content: RecordDict, timeout: float) -> Broadcast:
    """Send ``content`` as a ``message_type`` message to every connected node and wait up to ``timeout`` s."""
    nodes = sorted(grid.get_node_ids())
    messages = [Message(content=content, dst_node_id=node, message_type=message_type) for node in nodes]
    result = Broadcast()
    received = list(grid.send_and_receive(messages, timeout=timeout))
    for msg in received:
        if msg.has_error():
            result.failures.append(f"node {msg.metadata.src_node_id}: {msg.error.reason}")
        else:
            result.replies[int(msg.content[METRICS][PARTITION])] = msg
    if len(received) < len(messages):
        result.failures.append(f"{len(messages) - len(received)} node(s) sent no reply within {timeout:.0f} s")
    result.replies = dict(sorted(result.replies.items()))
    return result


def reply_metrics(msg: Message) -> dict[str, float]:
    """A client reply's metrics, without the bookkeeping keys (partition id, example count, label counts)."""
    return {k: float(v) for k, v in msg.content[METRICS].items() if k not in (PARTITION, NUM_EXAMPLES, LABEL_COUNTS)}
