"""How the server counts failed clients and when a run of failures fails, against a grid with no clients behind it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from flwr.app import Error, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fedkd.config import load_config
from fedkd.errors import FedkdError
from fedkd.runs import RunDir
from fedkd_strategies.messaging import Failure, failures_of
from fedkd_strategies.server import run_federation

CROWD_FEDAVG = Path(__file__).resolve().parent.parent / "simulations" / "crowd_fedavg.toml"
NODES = (11, 12, 13, 14)


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Flower sets for a ServerApp's process before any Message can be made."""
    for name in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


class SilentGrid(Grid):
    """Four connected nodes that never reply (their processes hang, or the network dropped them)."""

    def set_run(self, run: object) -> None:
        del run

    @property
    def run(self) -> None:
        return None

    def create_message(self, *args: object, **kwargs: object) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return NODES

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return [str(i) for i, _ in enumerate(messages)]

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return []

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        raise AssertionError("the server waits through InterruptibleGrid, which pushes and pulls itself")


def test_a_run_in_which_no_client_ever_replied_fails_and_counts_each_silent_client(tmp_path: Path) -> None:
    cfg = load_config(CROWD_FEDAVG, {"data.dataset": "digits", "client.model": "mlp", "federation.num_clients": 4,
                                     "federation.num_rounds": 2, "federation.round_timeout": 0.2})
    run = RunDir.open(tmp_path / "r", cfg)
    with pytest.raises(FedkdError, match="no client replied in any of the 2 rounds, so the global model is the "
                                         "initial one"):
        run_federation(SilentGrid(), cfg, run)
    metrics = run.metrics()
    assert metrics.query("metric == 'clients_failed'")["value"].tolist() == [4.0, 4.0]  # clients, not lines
    assert [p.name for p in sorted(run.checkpoint_dir.glob("*.json"))] == ["ckpt-00000001.json", "ckpt-00000002.json"]


def test_failures_name_each_node_once_per_exchange() -> None:
    sent = [Message(RecordDict(), dst_node_id=node, message_type="train") for node in NODES]
    error = Message(Error(code=0, reason="disk full"), reply_to=sent[1])
    failures = failures_of(sent, [error], timeout=5)
    assert failures == [Failure(12, "disk full"), Failure(11, "no reply within 5 s"),
                        Failure(13, "no reply within 5 s"), Failure(14, "no reply within 5 s")]
    assert str(failures[0]) == "node 12: disk full"
