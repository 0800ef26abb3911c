"""A Grid whose waits end as soon as the run is asked to stop (SIGINT, SIGTERM: ``fedkd.stopping``).

Flower runs the ServerApp in its own thread and waits for replies in ``Grid.send_and_receive`` for up to
``federation.round_timeout``. When the run is interrupted, Ray's client processes are gone, so that wait
would last the whole timeout for every remaining round. Every strategy talks to the clients through this
wrapper (``run_federation`` puts it around the grid it is given), whose waits check the stop flag every
``POLL_SECONDS`` and raise ``RunInterrupted`` instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fedkd.stopping import check_stop, wait_or_stop

POLL_SECONDS = 0.1


class InterruptibleGrid(Grid):
    """``grid`` with ``send_and_receive`` and ``get_node_ids`` that give way to a stop request."""

    def __init__(self, grid: Grid) -> None:
        self.inner = grid

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        check_stop()
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        check_stop()
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Flower's push-then-poll loop (``InMemoryGrid.send_and_receive``), with a stop check at every poll."""
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while True:
            received = list(self.pull_messages(pending))
            replies.extend(received)
            pending.difference_update(msg.metadata.reply_to_message_id for msg in received)
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                return replies
            wait_or_stop(POLL_SECONDS)
