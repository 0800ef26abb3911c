"""The federated query path in waves: one message per sampled client per wave, exact budgets, compact payloads,
seeded client sampling, and the plain loop computing exactly what the Flower simulation computes."""

from pathlib import Path

import pytest
import torch

from fedkd.config import load_config
from fedkd.federation.plain import PlainLink, run_plain
from fedkd.federation.query_server import QueryServer
from fedkd.federation.sampling import sampled_partitions
from fedkd.seeding import seed_torch

CROWD_FEDAVG = Path(__file__).resolve().parent.parent / "simulations" / "crowd_fedavg.toml"
FEDAEDM = {
    "federation.strategy": "fedaedm",
    "federation.num_clients": 4,
    "federation.clients_per_round": 3,
    "federation.num_rounds": 2,
    "federation.partition": "iid",
    "crowd.chunks": 1,
    "client.local_epochs": 3,
    "distill.method": "aedm",
    "distill.mode": "label",
    "distill.budget": 768,
    "distill.batch_size": 64,
    "distill.student_steps": 0,
    "aedm.sampling_steps": 2,
    "aedm.grad_last_k": 1,
    "aedm.steer_steps": 1,
    "aedm.offline_epochs": 2,
    "query.store_every_round": True,
}


def test_sampling_is_seeded_per_round_and_covers_fraction_or_count():
    cfg = load_config(CROWD_FEDAVG, {"federation.num_clients": 100, "federation.clients_per_round": 10})
    rounds = [sampled_partitions(cfg, r) for r in (1, 2, 1)]
    assert rounds[0] == rounds[2] and rounds[0] != rounds[1]
    assert all(len(r) == 10 and r == sorted(set(r)) and 0 <= min(r) and max(r) < 100 for r in rounds)
    assert sampled_partitions(cfg.replace({"run.seed": 1}), 1) != rounds[0]
    by_fraction = cfg.replace({"federation.clients_per_round": 0, "federation.fraction_train": 0.25})
    assert len(sampled_partitions(by_fraction, 1)) == 25
    assert sampled_partitions(cfg.replace({"federation.clients_per_round": 100}), 3) == list(range(100))


class CountingLink(PlainLink):
    """The plain link, recording every ask: (round, partitions, number of queries)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.asks: list[tuple[int, list[int], int]] = []

    def ask(self, server_round, partitions, codes, scale, mode):
        assert codes.dtype == torch.uint8 and scale.dtype == torch.float32 and scale.shape == (len(codes), 2)
        self.asks.append((server_round, list(partitions), len(codes)))
        answers = super().ask(server_round, partitions, codes, scale, mode)
        assert all(a.dtype == torch.uint8 and a.shape == (len(codes),) for a in answers.values())
        return answers


@pytest.mark.parametrize(("wave_size", "asks_per_round"), [(0, 1), (64, 6)])
def test_each_wave_is_one_ask_of_the_sampled_clients_and_the_budget_is_exact(wave_size, asks_per_round):
    cfg = load_config(CROWD_FEDAVG, {**FEDAEDM, "query.wave_size": wave_size, "query.eval_ensemble": False})
    server = QueryServer(cfg, "aedm")
    seed_torch(cfg.run.seed, "global-init")
    student = server.build_student()
    link = CountingLink(cfg)
    weights = student.state_dict()
    for server_round in (1, 2):
        outcome = server.run_round(link, server_round, weights)
        weights = outcome.weights
        assert outcome.queries == 384 * server_round  # the budget, spread evenly over the rounds, spent exactly
        asks = [a for a in link.asks if a[0] == server_round]
        assert len(asks) == asks_per_round
        assert all(partitions == sampled_partitions(cfg, server_round) for _, partitions, _ in asks)
        assert sum(n for _, _, n in asks) == 384
    assert len(server.distiller.store) == 768 and server.distiller.finished


@pytest.mark.slow
def test_the_simulation_equals_the_plain_loop_and_sends_one_message_per_client_per_wave(tmp_path):
    from flwr.clientapp import ClientApp

    from fedkd.runs import RunDir
    from fedkd_simulations.runner import run_federated

    log = tmp_path / "queries.txt"
    counting = ClientApp()

    @counting.train()
    def train(msg, context):
        from fedkd_clients.app import train as real_train

        return real_train(msg, context)

    @counting.query()
    def query(msg, context):
        from fedkd_clients.app import query as real_query

        with open(log, "a") as fh:
            fh.write(f"{context.node_config['partition-id']} {'queries' in msg.content}\n")
        return real_query(msg, context)

    cfg = load_config(CROWD_FEDAVG, FEDAEDM)
    run = RunDir.open(tmp_path / "sim", cfg)
    run_federated(cfg, run, client_app=counting)
    metrics = run.metrics()
    sim_acc = metrics.query("metric == 'test_acc' and client.isna()")["value"].tolist()
    plain = run_plain(cfg)
    assert sim_acc == pytest.approx(plain.test_acc, abs=1e-9)
    # per round: one wave of the round's share + one of the test images, to each of the 3 sampled clients
    asked = [line.split() for line in log.read_text().splitlines()]
    assert sum(flag == "True" for _, flag in asked) == 2 * 2 * 3
    for name in ("bytes_down", "bytes_up"):
        logged = metrics.query(f"metric == '{name}'")["value"].tolist()
        assert logged == getattr(plain, name) and all(b > 0 for b in logged)
    # label answers travel as uint8: one byte per query (384 a round, plus the 1,000 test images) and client
    assert metrics.query("metric == 'bytes_up'")["value"].tolist() == [3 * (384 + 1000)] * 2
