"""Data-free strategies end to end in a Flower simulation: exact budgets, answers only, resumable."""

from pathlib import Path

import pandas as pd
import pytest
import torch

import fedkd
from fedkd.config import load_config
from fedkd.errors import ConfigError
from fedkd.runs import TIMING_METRICS

CROWD_FEDAVG = Path(__file__).resolve().parent.parent / "simulations" / "crowd_fedavg.toml"
FEDDF = {
    "federation.strategy": "feddf",
    "federation.num_clients": 3,
    "federation.num_rounds": 2,
    "federation.partition": "iid",
    "crowd.chunks": 1,
    "client.model": "mlp",
    "client.architectures": ["mlp", "lenet5"],
    "client.aggregator": "bila",
    "client.local_epochs": 5,
    "distill.method": "real",
    "distill.mode": "proba",
    "distill.budget": 6400,
    "distill.batch_size": 200,
    "distill.student_steps": 4,
    "distill.student_model": "mlp",
}


def test_strategy_and_query_source_must_agree():
    with pytest.raises(ConfigError, match="set distill.method = 'real'"):
        from fedkd_strategies.query_distill import FedDF

        FedDF(load_config(CROWD_FEDAVG, {**FEDDF, "distill.method": "tandemgan"}))


def test_the_budget_is_spread_over_the_rounds_from_query_first_round():
    from fedkd_strategies.query_distill import FedDF

    rounds = {"federation.num_rounds": 5, "query.first_round": 3}
    cfg = load_config(CROWD_FEDAVG, {**FEDDF, **rounds, "distill.budget": 1000})
    assert [FedDF(cfg).server.budget_until(r) for r in range(1, 6)] == [0, 0, 334, 667, 1000]
    with pytest.raises(ConfigError, match="query.first_round = 6 is after the last round"):
        FedDF(load_config(CROWD_FEDAVG, {**FEDDF, "federation.num_rounds": 5, "query.first_round": 6}))


def test_feddf_frames_public_images_into_query_public_box():
    """The public digits are placed like the clients' MNIST digits: a centred 20x20 box, background around."""
    from fedkd_strategies.query_distill import FedDF

    box = {"data.dataset": "mnist5k", "query.public_dataset": "digits", "query.public_box": 20}
    pool = FedDF(load_config(CROWD_FEDAVG, {**FEDDF, **box})).server.public_pool()
    assert pool.shape[1:] == (1, 28, 28)
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert (pool[:, 0, border] == -1).all()
    assert (pool[:, 0, 4:24, 4:24] > -1).any(dim=(1, 2)).all()
    with pytest.raises(ConfigError, match="set query.public_box"):
        FedDF(load_config(CROWD_FEDAVG, {**FEDDF, **box, "query.public_box": 0})).server.public_pool()
    with pytest.raises(ConfigError, match="query.public_box must be <= the clients' image size 28, got 30"):
        FedDF(load_config(CROWD_FEDAVG, {**FEDDF, **box, "query.public_box": 30})).server.public_pool()


@pytest.mark.slow
def test_feddf_learns_through_answers_with_an_exact_budget_and_resumes(tmp_path):
    cfg = load_config(CROWD_FEDAVG, FEDDF)
    first = fedkd.run(cfg, out=tmp_path / "a")
    m = first.metrics
    queries = m.query("metric == 'test_acc' and round > 0")["queries"].tolist()
    assert queries == [3200, 6400]  # the budget, spread evenly over the rounds, spent exactly
    assert first.final("test_acc/ensemble") > 0.7
    assert first.final("test_acc") > 0.5  # 10 classes; the student never saw a client's data or weights
    assert set(m["client"].dropna()) == {"0", "1", "2"}

    for path in (first.path / "checkpoints").glob("ckpt-00000002.*"):
        path.unlink()
    resumed = fedkd.run(cfg, out=first.path, resume=True)
    stable = [r[~r["metric"].isin(TIMING_METRICS)].reset_index(drop=True) for r in (first.metrics, resumed.metrics)]
    pd.testing.assert_frame_equal(*stable)


def test_fedaedm_distils_prior_queries_into_a_student_within_the_budget():
    """Data-free with a public-data prior: label answers only, the budget spent exactly, a student above chance.

    The plain loop computes what the Flower simulation computes (``tests/test_waves.py`` runs a ``fedaedm``
    federation through both), so this runs it without Ray's start-up.
    """
    from fedkd.federation.plain import run_plain

    overrides = {
        **{k: v for k, v in FEDDF.items() if not k.startswith("distill.")},
        "federation.strategy": "fedaedm",
        "client.architectures": [],
        "client.model": "lenet5",
        "client.augment": True,
        "distill.method": "aedm",
        "distill.mode": "label",
        "distill.budget": 1920,
        "distill.batch_size": 64,
        "distill.student_steps": 0,
        "distill.student_model": "lenet5",
        "aedm.sampling_steps": 4,
        "aedm.grad_last_k": 1,
        "aedm.steer_steps": 2,
        "aedm.offline_epochs": 10,
    }
    run = run_plain(load_config(CROWD_FEDAVG, overrides))
    assert run.queries == [960, 1920]
    assert run.server_metrics[-1]["test_acc/ensemble"] > 0.7
    assert run.test_acc[-1] > 0.3  # 10 classes; queries were decoded from a prior of other digits


def test_fedaedm_refuses_a_prior_of_the_clients_own_data():
    from fedkd_strategies.query_distill import FedAEDM

    cfg = load_config(CROWD_FEDAVG, {"federation.strategy": "fedaedm", "distill.method": "aedm",
                                   "distill.student_steps": 0, "aedm.prior_dataset": "mnist5k"})
    with pytest.raises(ConfigError, match="the teacher's own data"):
        FedAEDM(cfg).build_global_model((1, 28, 28), 10)



def test_fedaedm_needs_every_query_to_reach_the_replay_memory():
    from fedkd_strategies.query_distill import FedAEDM

    cfg = load_config(CROWD_FEDAVG, {"federation.strategy": "fedaedm", "distill.method": "aedm",
                                     "distill.student_steps": 2})
    with pytest.raises(ConfigError, match=r"needs distill.student_steps = 0 \(got 2\)"):
        FedAEDM(cfg).build_global_model((1, 28, 28), 10)
