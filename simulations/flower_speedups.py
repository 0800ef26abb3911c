"""Flower's in-memory SuperLink state made linear in the number of simulated nodes.

In a Flower simulation one thread polls every node for its pending instructions ten times a second, and
``InMemoryLinkState.get_message_ins(node_id)`` runs its validity check (expiry, federation membership) on *every*
message in flight, whoever it is for: a round that sends one message to each of N nodes costs N x N checks per
poll. At 500 clients that check loop, not the clients' work, was most of a round (FedAvg, 3.9x the plain loop's
round time in ``benchmarks/federation_overhead.py`` before this). ``only_node_messages`` lets the original method
see only the messages addressed to the polling node, so it checks, delivers and deletes exactly what it did before,
for that node, at the cost of one pass over the message ids. It touches the simulation's state only (a deployed
SuperLink keeps its own); the runner applies it before each simulation.

The wrapper leans on private details of ``InMemoryLinkState`` (checked on Flower 1.41.0 and 1.42.0, whose class is
the same): ``get_message_ins(self, node_id, limit, ...)`` and the instance attributes ``lock`` and
``message_ins_store``. ``speed_up_simulation_state`` checks them before patching and refuses, in one line, a Flower
whose class differs, rather than letting a simulation fail in a Flower thread.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from fedkd.errors import FedkdError

CHECKED_ON = ("1.41.0", "1.42.0")


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


def require_patchable(state_class: type) -> None:
    """Raise ``FedkdError`` unless ``state_class`` has what ``only_node_messages`` relies on: a
    ``get_message_ins(self, node_id, limit, ...)`` and an ``__init__`` that sets ``self.lock`` and
    ``self.message_ins_store``."""
    method = getattr(state_class, "get_message_ins", None)
    params = list(inspect.signature(method).parameters)[:3] if callable(method) else []
    init_sources = "".join(_source(cls.__init__) for cls in state_class.__mro__ if "__init__" in vars(cls))
    missing = [name for name in ("self.lock", "self.message_ins_store") if name not in init_sources]
    if params != ["self", "node_id", "limit"] or missing:
        found = f"get_message_ins({', '.join(params[1:])})" if callable(method) else "no get_message_ins"
        found += f", no {' or '.join(missing)}" if missing else ""
        raise FedkdError(
            f"flwr {version('flwr')}: {state_class.__name__} is not the class fedkd's simulation speed-up patches "
            f"(found {found}; expected get_message_ins(node_id, limit), self.lock and self.message_ins_store, as "
            f"in flwr {' and '.join(CHECKED_ON)}); install flwr[simulation]=={CHECKED_ON[-1]}"
        )


def _source(function: Any) -> str:
    """``function``'s source, or "" where Python has none (a C slot such as ``object.__init__``)."""
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def patchable_state_class() -> type:
    """Flower's ``InMemoryLinkState``, once checked to be the class ``only_node_messages`` was written for;
    ``FedkdError`` otherwise (the runner's pre-flight check calls this, so a run is refused before it starts)."""
    try:
        from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState
    except ImportError as error:
        raise FedkdError(
            f"flwr {version('flwr')} has no flwr.server.superlink.linkstate.in_memory_linkstate.InMemoryLinkState, "
            f"which fedkd's simulation speed-up patches (present in flwr {' and '.join(CHECKED_ON)}); "
            f"install flwr[simulation]=={CHECKED_ON[-1]}"
        ) from error
    if not getattr(InMemoryLinkState.get_message_ins, "fedkd_only_node_messages", False):
        require_patchable(InMemoryLinkState)
    return InMemoryLinkState


def speed_up_simulation_state() -> None:
    """Apply ``only_node_messages`` to Flower's ``InMemoryLinkState`` (once per process)."""
    state_class = patchable_state_class()
    if not getattr(state_class.get_message_ins, "fedkd_only_node_messages", False):
        state_class.get_message_ins = only_node_messages(state_class.get_message_ins)
