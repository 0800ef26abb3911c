"""The one-shot protocol's references: measured on the very clients the student learnt from, absent (not zero)
where they do not exist, and never a way round a node's labels-only policy."""

from pathlib import Path

import pytest

from fedkd.config import load_config
from fedkd.federation import local
from fedkd.federation.data import client_data, train_test
from fedkd.federation.plain import PlainLink, run_plain, run_plain_fedavg
from fedkd.federation.query_server import QueryServer
from fedkd.seeding import seed_torch
from fedkd.train import evaluate_accuracy
from fedkd_clients.app import reveals_weights

CROWD_FEDAVG = Path(__file__).resolve().parent.parent / "simulations" / "crowd_fedavg.toml"
ONESHOT = {
    "federation.strategy": "fedaedm",
    "federation.num_clients": 3,
    "federation.num_rounds": 1,
    "federation.partition": "iid",
    "crowd.chunks": 1,
    "client.local_epochs": 4,
    "client.val_fraction": 0.2,
    "client.patience": 2,
    "client.shared_init": True,
    "distill.method": "aedm",
    "distill.mode": "label",
    "distill.budget": 256,
    "distill.batch_size": 64,
    "distill.student_steps": 0,
    "aedm.sampling_steps": 2,
    "aedm.grad_last_k": 1,
    "aedm.steer_steps": 1,
    "aedm.offline_epochs": 1,
    "query.eval_references": True,
}
REFERENCES = {"test_acc/ensemble", "test_acc/ensemble_proba", "test_acc/best_client", "test_acc/fedavg_oneshot"}


def _one_round(cfg, monkeypatch):
    """One round of the query server over the plain link, counting the clients' trainings."""
    trainings = []
    real_train = local.local_train

    def counting_train(cfg, data, *args, **kwargs):
        trainings.append(data.partition_id)
        return real_train(cfg, data, *args, **kwargs)

    monkeypatch.setattr(local, "local_train", counting_train)
    server = QueryServer(cfg, "aedm")
    seed_torch(cfg.run.seed, "global-init")
    student = server.build_student()
    link = PlainLink(cfg)
    outcome = server.run_round(link, 1, student.state_dict())
    return outcome, link, trainings


def test_references_come_from_the_clients_the_student_learnt_from(monkeypatch):
    cfg = load_config(CROWD_FEDAVG, {**ONESHOT, "query.combine": "ds"})
    outcome, link, trainings = _one_round(cfg, monkeypatch)
    assert sorted(trainings) == [0, 1, 2]  # one training per client per run, shared by student and references
    assert REFERENCES <= set(outcome.server_metrics)
    # one-shot FedAvg is FedAvg's first round on the same clients: same shared init, same training
    fedavg = run_plain_fedavg(cfg.replace({"federation.strategy": "fedavg"}))
    assert outcome.server_metrics["test_acc/fedavg_oneshot"] == pytest.approx(fedavg.test_acc[1], abs=1e-9)
    _, test = train_test(cfg)
    x_test, y_test = test.tensors()
    accuracies = []
    for state in link.states.values():
        model = local.build_model(cfg, tuple(x_test.shape[1:]), test.n_classes)
        model.load_state_dict(state.model)
        accuracies.append(evaluate_accuracy(model, x_test, y_test))
        assert {"val_acc", "epochs"} <= set(state.last_metrics) and state.last_metrics["epochs"] <= 4
    assert outcome.server_metrics["test_acc/best_client"] == pytest.approx(max(accuracies), abs=1e-9)
    # DS learnt the clients on the queries: read with that, the test answers make another committee
    metrics = outcome.server_metrics
    assert 0.0 <= metrics["test_acc/ensemble_as_taught"] <= 1.0
    assert metrics["test_acc/ensemble_as_taught"] != metrics["test_acc/ensemble"]


def test_held_out_items_stay_out_of_training_and_on_their_side(monkeypatch):
    cfg = load_config(CROWD_FEDAVG, ONESHOT)
    data = client_data(cfg, 0)
    held_out = local.held_out_items(cfg, data)
    assert 0 < held_out.sum() < len(held_out) and (local.held_out_items(cfg, data) == held_out).all()
    assert not local.held_out_items(cfg.replace({"client.val_fraction": 0.0}), data).any()


@pytest.mark.parametrize("change", [{"client.architectures": ["lenet5", "mlp"], "query.combine": "coverage"},
                                    {"client.shared_init": False}])
def test_fedavg_reference_is_absent_where_averaging_means_nothing(change, monkeypatch):
    cfg = load_config(CROWD_FEDAVG, {**ONESHOT, **change})
    outcome, link, _ = _one_round(cfg, monkeypatch)
    assert set(outcome.server_metrics) >= REFERENCES - {"test_acc/fedavg_oneshot"}
    assert "test_acc/fedavg_oneshot" not in outcome.server_metrics
    # coverage reads the clients otherwise than the Dawid-Skene that judges it; class-aware is its own reference
    assert ("test_acc/ensemble_as_taught" in outcome.server_metrics) == (cfg.query.combine == "coverage")


def test_a_fixed_reading_is_judged_by_dawid_skene_on_the_test_answers():
    server = QueryServer(load_config(CROWD_FEDAVG, {**ONESHOT, "query.combine": "coverage"}), "aedm")
    assert server.evaluation_combiner(proba=False).method == "ds"
    assert server.evaluation_combiner(proba=True).method == "class_aware"


def test_no_references_without_asking_for_them(monkeypatch):
    cfg = load_config(CROWD_FEDAVG, {**ONESHOT, "query.eval_references": False})
    outcome, _, _ = _one_round(cfg, monkeypatch)
    assert "test_acc/ensemble" in outcome.server_metrics
    assert not set(outcome.server_metrics) & (REFERENCES - {"test_acc/ensemble"})
    assert "test_acc/ensemble_as_taught" not in outcome.server_metrics  # class-aware learns nothing to read with


def test_a_labels_only_node_never_reveals_its_weights():
    cfg = load_config(CROWD_FEDAVG, ONESHOT)
    assert reveals_weights(cfg, "") and reveals_weights(cfg, "proba")
    assert not reveals_weights(cfg, "label")
    assert not reveals_weights(cfg.replace({"query.eval_references": False}), "")


@pytest.mark.slow
def test_the_simulation_measures_the_references_the_plain_loop_does(tmp_path):
    from fedkd.runs import RunDir
    from fedkd_simulations.runner import run_federated

    cfg = load_config(CROWD_FEDAVG, ONESHOT)
    run = RunDir.open(tmp_path / "sim", cfg)
    run_federated(cfg, run)
    metrics = run.metrics().query("round == 1 and client.isna()")
    logged = dict(zip(metrics["metric"], metrics["value"], strict=True))
    plain = run_plain(cfg)
    for name in REFERENCES | {"test_acc"}:
        expected = plain.test_acc[1] if name == "test_acc" else plain.server_metrics[0][name]
        assert logged[name] == pytest.approx(expected, abs=1e-9), name
