"""Query messages through the real ClientApp in a Flower simulation: labels only, or probabilities."""

from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from fedkd.config import load_config
from fedkd.data import load_dataset
from fedkd.errors import FedkdError
from fedkd.payload import encode_images
from fedkd_clients.app import answer_mode
from fedkd_clients.app import app as client_app
from fedkd_clients.protocol import (
    ANSWERS,
    CODES,
    CONFIG,
    METRICS,
    PARTITION,
    QUERIES,
    QUERY_MODE,
    SCALE,
    TENSOR,
    instruction_config,
)
from fedkd_strategies.server import wait_for_nodes

CROWD_FEDAVG = Path(__file__).resolve().parent.parent / "simulations" / "crowd_fedavg.toml"


def _send(grid: Grid, cfg, message_type: str, mode: str = "", **records) -> list[Message]:
    messages = []
    for node in sorted(grid.get_node_ids()):
        config = instruction_config(cfg, 1)
        config[QUERY_MODE] = mode
        messages.append(Message(RecordDict({CONFIG: config, **records}), dst_node_id=node, message_type=message_type))
    return list(grid.send_and_receive(messages, timeout=120))


@pytest.mark.slow
def test_query_round_trip_labels_and_probabilities():
    cfg = load_config(
        CROWD_FEDAVG,
        {
            "data.dataset": "digits",
            "federation.num_clients": 2,
            "client.architectures": ["mlp", "lenet5"],
            "federation.partition": "iid",
            "crowd.chunks": 1,
        },
    )
    x = torch.from_numpy(load_dataset("digits").x[:16].copy())
    seen: dict[str, list] = {}
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context) -> None:
        wait_for_nodes(grid, 2, timeout=60)
        seen["roll-call"] = _send(grid, cfg, MessageType.QUERY)
        seen["train"] = _send(grid, cfg, MessageType.TRAIN)
        codes, scale = encode_images(x)
        queries = ArrayRecord.from_torch_state_dict({CODES: codes, SCALE: scale})
        for mode in ("label", "proba"):
            seen[mode] = _send(grid, cfg, MessageType.QUERY, mode, **{QUERIES: queries})

    run_simulation(
        server_app=server, client_app=client_app, num_supernodes=2, backend_config={"client_resources": {"num_cpus": 1}}
    )

    assert sorted(int(r.content[METRICS][PARTITION]) for r in seen["roll-call"]) == [0, 1]
    assert all(ANSWERS not in r.content for r in seen["roll-call"])
    for reply in seen["train"]:
        assert not reply.has_error(), reply.error
        assert "arrays" not in reply.content  # data-free training: no weights leave the node
        assert 0.5 < reply.content[METRICS]["label_acc"] <= 1.0
    labels = {
        int(r.content[METRICS][PARTITION]): r.content[ANSWERS].to_torch_state_dict()[TENSOR] for r in seen["label"]
    }
    probas = {
        int(r.content[METRICS][PARTITION]): r.content[ANSWERS].to_torch_state_dict()[TENSOR] for r in seen["proba"]
    }
    assert set(labels) == {0, 1}
    for pid in (0, 1):
        assert labels[pid].dtype == torch.uint8 and labels[pid].shape == (16,)  # indices, nothing more
        assert probas[pid].dtype == torch.float16 and probas[pid].shape == (16, 10)
        assert torch.allclose(probas[pid].float().sum(dim=1), torch.ones(16), atol=1e-2)
        assert (probas[pid].float().argmax(dim=1) == labels[pid].long()).float().mean() >= 0.9


def test_a_label_only_node_answers_labels_whatever_the_server_asks():
    assert answer_mode("proba", "label") == "label"
    assert answer_mode("label", "label") == "label"
    assert answer_mode("proba", "") == "proba"
    assert answer_mode("proba", "proba") == "proba"
    with pytest.raises(FedkdError, match="answer-mode = 'labels' is not one of"):
        answer_mode("label", "labels")
