"""Flower's in-memory SuperLink state made linear in the number of simulated nodes.

In a Flower simulation one thread polls every node for its pending instructions ten times a second, and
``InMemoryLinkState.get_message_ins(node_id)`` runs its validity check (expiry, federation membership) on *every*
message in flight, whoever it is for: a round that sends one message to each of N nodes costs N x N checks per
poll. At 500 clients that check loop, not the clients' work, was most of a round (FedAvg, 3.9x the plain loop's
round time in ``benchmarks/federation_overhead.py`` before this). ``only_node_messages`` lets the original method
see only the messages addressed to the polling node, so it checks, delivers and deletes exactly what it did before,
for that node, at the cost of one pass over the message ids. It touches the simulation's state only (a deployed
SuperLink keeps its own); the runner applies it before each simulation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def only_node_messages(get_message_ins: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """``get_message_ins`` run on a view of ``self.message_ins_store`` holding only ``node_id``'s messages; the
    messages it deleted from the view (expired or invalid) are deleted from the whole store too."""

    @functools.wraps(get_message_ins)
    def wrapper(self: Any, node_id: int, limit: int | None, **kwargs: Any) -> list[Any]:
        with self.lock:
            store = self.message_ins_store
            view = {mid: msg for mid, msg in store.items() if msg.metadata.dst_node_id == node_id}
            if not view:
                return []
            self.message_ins_store = view
            ids = set(view)
            try:
                return get_message_ins(self, node_id, limit, **kwargs)
            finally:
                for mid in ids - self.message_ins_store.keys():
                    store.pop(mid, None)
                self.message_ins_store = store

    wrapper.fedkd_only_node_messages = True  # type: ignore[attr-defined]
    return wrapper


def speed_up_simulation_state() -> None:
    """Apply ``only_node_messages`` to Flower's ``InMemoryLinkState`` (once per process)."""
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState

    if not getattr(InMemoryLinkState.get_message_ins, "fedkd_only_node_messages", False):
        InMemoryLinkState.get_message_ins = only_node_messages(InMemoryLinkState.get_message_ins)
