"""The federation, client side and end to end through a real Flower simulation on Ray."""

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from run_process import STOP_SECONDS, latest_checkpoint, start_run, stop, wait_for

import fedkd
from fedkd.config import load_config
from fedkd.errors import ConfigError
from fedkd.federation.data import client_data, client_partitions, train_test
from fedkd.federation.local import ingest_labels, label_accuracy
from fedkd.federation.plain import run_plain_fedavg
from fedkd.runs import TIMING_METRICS, read_metrics

CROWD_FEDAVG = Path(__file__).resolve().parent.parent / "simulations" / "crowd_fedavg.toml"
TINY = {
    "run.name": "tiny",
    "data.dataset": "digits",
    "federation.num_clients": 3,
    "federation.num_rounds": 3,
    "federation.partition": "iid",
    "crowd.chunks": 2,
    "client.model": "mlp",
    "client.local_epochs": 3,
    "client.lr": 0.003,
}


@pytest.fixture(scope="module")
def tiny():
    return load_config(CROWD_FEDAVG, TINY)


def test_clients_share_out_the_train_pool_disjointly(tiny):
    train, test = train_test(tiny)
    parts = client_partitions(tiny)
    assert sum(len(p) for p in parts) == len(train)
    assert len(np.unique(np.concatenate(parts))) == len(train)
    assert len(test) == pytest.approx(0.2 * (len(train) + len(test)), abs=10)


def test_client_labels_arrive_in_chunks_and_match_the_noise(tiny):
    data = client_data(tiny, 1)
    assert len(data.chunks) == 2
    tasks = [set(c["task"]) for c in data.chunks]
    assert not tasks[0] & tasks[1]
    assert tasks[0] | tasks[1] == set(range(len(data.y_true)))
    labels = pd.concat(data.chunks)
    wrong = (labels["label"].to_numpy() != data.y_true[labels["task"].to_numpy()]).mean()
    assert 0.25 < wrong < 0.45  # annotators are wrong 30-40 % of the time
    assert client_data(tiny, 1) is data  # cached per process


def test_replaying_missed_rounds_equals_round_by_round_ingestion(tiny):
    data = client_data(tiny, 0)
    state = None
    for r in (1, 2, 3):
        state = ingest_labels(tiny, data, state, r)
    replayed = ingest_labels(tiny, data, None, 3)
    assert np.array_equal(state.labels, replayed.labels)
    assert (state.labels >= 0).all()
    assert 0.7 < label_accuracy(data, state.labels) < 1.0  # majority of 3 noisy labels beats one annotator


def test_round_one_sees_only_the_first_chunk(tiny):
    data = client_data(tiny, 2)
    state = ingest_labels(tiny, data, None, 1)
    assert set(np.flatnonzero(state.labels >= 0)) == set(data.chunks[0]["task"])


def test_aggregator_options_reach_the_cleaning_and_bad_ones_are_named(tiny):
    """BILA's log class prior is what moves its labels on a skewed client (benchmarks/client_labels.py)."""
    cfg = tiny.replace({"client.aggregator": "bila", "federation.partition": "dirichlet", "federation.alpha": 0.1})
    data = client_data(cfg, 0)
    with_prior = ingest_labels(cfg, data, None, 2).labels
    no_prior = cfg.replace(["client.aggregator_options={bila = {log_prior = false}}"])
    assert (with_prior != ingest_labels(no_prior, data, None, 2).labels).any()
    as_mv = no_prior.replace({"client.aggregator": "mv"})  # only the chosen aggregator's options apply
    assert (ingest_labels(as_mv, data, None, 2).labels == ingest_labels(cfg.replace({"client.aggregator": "mv"}),
                                                                        data, None, 2).labels).all()
    with pytest.raises(ConfigError, match="client.aggregator_options.bila: unknown BILA option.*log_priors"):
        cfg.replace({"client.aggregator_options": {"bila": {"log_priors": False}}})
    with pytest.raises(ConfigError, match=r"'mv' has no option\(s\) \['log_prior'\]; it takes \['tie_break'\]"):
        cfg.replace({"client.aggregator_options": {"mv": {"log_prior": False}}})
    with pytest.raises(ConfigError, match="a key of client.aggregator_options = 'bilaa' is not registered"):
        cfg.replace({"client.aggregator_options": {"bilaa": {}}})
    with pytest.raises(ConfigError, match="client.aggregator_options.bila must be a table"):
        cfg.replace({"client.aggregator_options": {"bila": "log_prior=false"}})


def _stable(metrics: pd.DataFrame) -> pd.DataFrame:
    return metrics[~metrics["metric"].isin(TIMING_METRICS)].reset_index(drop=True)


@pytest.mark.slow
def test_simulation_learns_is_reproducible_and_resumes_after_ctrl_c(tiny, tmp_path):
    cfg = tiny.replace({"federation.num_rounds": 8, "federation.round_timeout": 90.0})
    first = fedkd.run(cfg, out=tmp_path / "a")
    assert first.final("test_acc") > 0.5  # 10 classes: chance is 0.1
    clients = first.metrics[first.metrics["client"].notna()]
    assert set(clients["client"]) == {"0", "1", "2"}
    assert set(clients["metric"]) == {"label_acc", "train_loss"}
    assert (first.path / "manifest.json").is_file() and (first.path / "config.toml").is_file()

    # The Flower run computes exactly what the plain reference loop computes.
    reference = run_plain_fedavg(cfg).test_acc
    flower = first.metrics.query("metric == 'test_acc'")["value"].tolist()
    assert flower == pytest.approx(reference, abs=1e-9)

    # The same run in another process, stopped by one Ctrl-C (SIGINT to its process group) after its first
    # checkpoint: it exits within seconds, at that checkpoint, and resumes to the first run's metrics.
    second = tmp_path / "b"
    proc = start_run(CROWD_FEDAVG, {**TINY, "federation.num_rounds": 8, "federation.round_timeout": 90.0}, second)
    wait_for(second / "checkpoints" / "ckpt-00000001.json", proc, timeout=240)
    code, seconds, last_line = stop(proc, os.killpg, signal.SIGINT)
    assert code == 128 + signal.SIGINT and seconds < STOP_SECONDS, (code, seconds, last_line)
    assert "interrupted by SIGINT" in last_line and "continue it with --resume" in last_line
    done = latest_checkpoint(second)
    assert done < 8 and read_metrics(second / "metrics.csv")["round"].max() == done
    assert not (second / "run.lock").exists()
    resumed = fedkd.run(cfg, out=second, resume=True)
    pd.testing.assert_frame_equal(_stable(first.metrics), _stable(resumed.metrics))
    shutil.rmtree(tmp_path)


@pytest.mark.slow
def test_a_failing_client_is_dropped_from_its_round_not_the_run(tiny, tmp_path):
    from flwr.clientapp import ClientApp

    from fedkd.runs import RunDir
    from fedkd_clients.app import train as real_train
    from fedkd_simulations.runner import run_federated

    flaky = ClientApp()

    @flaky.train()
    def train(msg, context):
        if int(context.node_config["partition-id"]) == 1:
            raise RuntimeError("disk full")
        return real_train(msg, context)

    cfg = tiny.replace({"federation.num_rounds": 2})
    run = RunDir.open(tmp_path / "flaky", cfg)
    run_federated(cfg, run, client_app=flaky)
    metrics = run.metrics()
    assert metrics.query("metric == 'clients_failed'")["value"].tolist() == [1.0, 1.0]
    assert set(metrics["client"].dropna()) == {"0", "2"}
    assert metrics.query("metric == 'test_acc' and round == 2")["value"].iloc[0] > 0.3


def test_bila_state_carries_over_rounds(tiny):
    """A client's BILA labels chunk t with what it learnt on chunks < t, not from chunk t alone."""
    from fedkd.aggregation import build_aggregator
    from fedkd.seeding import derive_seed

    cfg = tiny.replace({"client.aggregator": "bila", "crowd.chunks": 3})
    data = client_data(cfg, 0)
    state = ingest_labels(cfg, data, ingest_labels(cfg, data, None, 1), 2)
    chunk2 = data.chunks[1]
    emitted = state.labels[chunk2["task"].unique()]

    online = build_aggregator("bila", data.n_classes, seed=derive_seed(cfg.run.seed, "aggregator", 0))
    online.partial_fit(data.chunks[0]).partial_fit(chunk2)
    assert (online.predict(chunk2).to_numpy() == emitted).all()
    assert len(online.worker_confusions()) == cfg.crowd.annotators_per_client
    assert state.aggregator["n_chunks_seen"] == 2
    fresh = build_aggregator("bila", data.n_classes, seed=derive_seed(cfg.run.seed, "aggregator", 0))
    fresh.partial_fit(chunk2)  # no memory of chunk 1: different estimates of the annotators
    assert not np.allclose(fresh.state_dict()["conf_logits_"], state.aggregator["conf_logits_"])
