"""The simulation's link-state speed-up: the wrapped method sees only the polling node's messages, and what it
deletes from that view is deleted from the whole store."""

import threading
from types import SimpleNamespace

import pytest

from fedkd.errors import FedkdError
from fedkd_simulations.flower_speedups import only_node_messages, patchable_state_class, require_patchable


class FakeState:
    def __init__(self, messages: dict[str, int]) -> None:
        self.lock = threading.RLock()
        self.message_ins_store = {
            mid: SimpleNamespace(metadata=SimpleNamespace(dst_node_id=node)) for mid, node in messages.items()
        }
        self.seen: list[set[str]] = []

    def get_message_ins(self, node_id, limit, *, run_id=None):
        self.seen.append(set(self.message_ins_store))
        self.message_ins_store.pop("expired", None)  # the original deletes invalid messages it checks
        return [m for m in self.message_ins_store.values() if m.metadata.dst_node_id == node_id][:limit]


def test_the_wrapped_method_sees_only_the_polling_nodes_messages():
    state = FakeState({"a": 1, "b": 2, "expired": 1, "c": 1})
    wrapped = only_node_messages(FakeState.get_message_ins)
    assert len(wrapped(state, 1, None)) == 2
    assert state.seen == [{"a", "expired", "c"}]
    assert set(state.message_ins_store) == {"a", "b", "c"}  # the deletion reached the whole store
    assert wrapped(state, 3, 1) == [] and len(state.seen) == 1  # nothing for node 3: the original is not called
    assert wrapped.fedkd_only_node_messages


def test_the_installed_flowers_link_state_is_the_one_the_speed_up_was_written_for():
    require_patchable(patchable_state_class())


class RenamedArguments:
    def __init__(self) -> None:
        self.lock = threading.RLock()

    def get_message_ins(self, node, limit):
        return []


@pytest.mark.parametrize("state_class", [RenamedArguments, object])
def test_a_link_state_of_another_shape_is_refused_in_one_line_naming_the_flower_version(state_class):
    with pytest.raises(FedkdError) as raised:
        require_patchable(state_class)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("flwr ") and "self.message_ins_store" in message
    assert require_patchable(FakeState) is None  # the fake has the shape, so the check itself is not what fails
