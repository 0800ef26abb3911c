"""Crowd simulation, crowd CSV validation and the bundled real sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedkd.data.crowd import (
    CROWD_SETS,
    MIXED_SHARES,
    NOISE_KINDS,
    chunk_tasks,
    client_annotator_pools,
    load_crowd,
    make_confusions,
    read_crowd_csv,
    read_gold_csv,
    simulate_labels,
    validate_crowd,
    write_crowd_csv,
)
from fedkd.errors import DataError


def _empirical_confusions(df: pd.DataFrame, truth: np.ndarray, n_workers: int, n_classes: int) -> np.ndarray:
    counts = np.zeros((n_workers, n_classes, n_classes))
    np.add.at(counts, (df["worker"].to_numpy(), truth[df["task"].to_numpy()], df["label"].to_numpy()), 1.0)
    return counts / counts.sum(axis=2, keepdims=True)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_confusions_are_row_stochastic_with_the_configured_wrong_rate(kind):
    conf = make_confusions(400, 4, kind, 0.3, np.random.default_rng(0))
    assert conf.shape == (400, 4, 4)
    np.testing.assert_allclose(conf.sum(axis=2), 1.0)
    assert (conf >= 0).all()
    wrong = 1.0 - np.trace(conf, axis1=1, axis2=2) / 4
    if kind == "hammer_spammer":  # hammers never err, spammers err 3/4 of the time; 0.3 on average
        assert set(np.round(wrong, 6)) <= {0.0, 0.75}
        assert wrong.mean() == pytest.approx(0.3, abs=0.06)
    elif kind == "mixed":  # experts 0.075, average workers 0.3, spammers 0.75, adversaries 0.925
        rates = dict(zip(MIXED_SHARES, [0.075, 0.3, 0.75, 0.925], strict=True))
        for worker_kind, rate in rates.items():
            assert np.mean(np.isclose(wrong, rate)) == pytest.approx(MIXED_SHARES[worker_kind], abs=0.06)
    else:
        np.testing.assert_allclose(wrong, 0.3)


def test_noise_range_draws_one_rate_per_annotator():
    conf = make_confusions(200, 3, "uniform", (0.1, 0.5), np.random.default_rng(1))
    wrong = 1.0 - np.trace(conf, axis1=1, axis2=2) / 3
    assert 0.1 <= wrong.min() < 0.15 and 0.45 < wrong.max() <= 0.5


def test_pair_flip_sends_wrong_labels_to_the_next_class():
    conf = make_confusions(1, 3, "pair_flip", 0.2, np.random.default_rng(0))[0]
    np.testing.assert_allclose(conf, [[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]])


@pytest.mark.parametrize("kind", ["uniform", "class_dependent", "pair_flip"])
def test_simulated_labels_follow_the_confusion_matrices(kind):
    rng = np.random.default_rng(3)
    conf = make_confusions(5, 3, kind, 0.35, rng)
    truth = rng.integers(0, 3, size=20_000)
    df = simulate_labels(truth, conf, labels_per_item=4, rng=rng)
    assert len(df) == 4 * truth.size
    assert not df.duplicated(["task", "worker"]).any()
    assert (df.groupby("task").size() == 4).all()
    np.testing.assert_allclose(_empirical_confusions(df, truth, 5, 3), conf, atol=0.025)


def test_simulate_labels_keeps_task_order_and_ids():
    rng = np.random.default_rng(0)
    conf = make_confusions(3, 2, "uniform", 0.1, rng)
    df = simulate_labels(np.array([1, 0, 1]), conf, 2, rng, task_ids=["c", "a", "b"], worker_ids=["x", "y", "z"])
    assert df["task"].tolist() == ["c", "c", "a", "a", "b", "b"]
    assert set(df["worker"]) <= {"x", "y", "z"}


def test_client_pools_are_independent_of_the_number_of_clients():
    two = client_annotator_pools(2, 4, 3, "uniform", (0.1, 0.4), seed=5)
    three = client_annotator_pools(3, 4, 3, "uniform", (0.1, 0.4), seed=5)
    np.testing.assert_array_equal(two[1], three[1])
    assert not np.allclose(three[0], three[1])


def test_chunk_tasks_keeps_whole_tasks_in_first_appearance_order():
    df = pd.DataFrame({"task": [5, 5, 2, 9, 2, 7, 7, 1], "worker": list("abcdefgh"), "label": [0] * 8})
    chunks = chunk_tasks(df, chunk_size=2)
    assert [c["task"].unique().tolist() for c in chunks] == [[5, 2], [9, 7], [1]]
    assert [len(c) for c in chunk_tasks(df, n_chunks=2)] == [5, 3]
    with pytest.raises(DataError, match="exactly one"):
        chunk_tasks(df)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"task": [1], "label": [0]}), "missing column.*worker"),
        (pd.DataFrame({"task": [], "worker": [], "label": []}), "no rows"),
        (pd.DataFrame({"task": [1, 2], "worker": [1, 1], "label": [0, 3]}), "outside the allowed range.*0..2.*3"),
        (pd.DataFrame({"task": [1, 2], "worker": [1, 1], "label": [0, -1]}), "outside the allowed range"),
        (pd.DataFrame({"task": [1, 2], "worker": [1, 1], "label": [0.0, 1.5]}), "non-integer values 1.5"),
        (pd.DataFrame({"task": [1, 2], "worker": [1, 1], "label": ["0", "cat"]}), "non-integer values 'cat'"),
        (pd.DataFrame({"task": [1, None], "worker": [1, 1], "label": [0, 1]}), "empty values in column.*task"),
    ],
)
def test_validation_names_the_problem(frame, match):
    with pytest.raises(DataError, match=match):
        validate_crowd(frame, n_classes=3)


def test_duplicate_rows_keep_the_last_with_a_warning():
    df = pd.DataFrame({"task": [1, 1, 2], "worker": ["a", "a", "a"], "label": [0, 2, 1]})
    with pytest.warns(UserWarning, match="1 duplicate"):
        clean = validate_crowd(df, n_classes=3)
    assert clean.to_dict("list") == {"task": [1, 2], "worker": ["a", "a"], "label": [2, 1]}


def test_integral_float_labels_are_accepted_as_int64():
    clean = validate_crowd(pd.DataFrame({"task": ["q"], "worker": [3], "label": [1.0]}))
    assert clean["label"].dtype == np.int64


def test_csv_round_trip_and_file_errors(tmp_path):
    df = pd.DataFrame({"task": ["t1", "t2"], "worker": ["w", "v"], "label": [1, 0]})
    write_crowd_csv(df, tmp_path / "labels.csv")
    back = read_crowd_csv(tmp_path / "labels.csv", n_classes=2)
    as_objects = {"task": object, "worker": object}
    pd.testing.assert_frame_equal(back.astype(as_objects), df.astype(as_objects))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_crowd_csv(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="does not exist"):
        read_crowd_csv(tmp_path / "nope.csv")
    (tmp_path / "gold.csv").write_text("task,label\n1,0\n")
    with pytest.raises(DataError, match="missing column.*true_label"):
        read_gold_csv(tmp_path / "gold.csv")


def test_every_bundled_set_loads_with_provenance():
    assert set(CROWD_SETS) == {"bluebird", "dog", "rte", "web", "sp", "product", "face", "trec"}
    dog = load_crowd("dog")
    assert dog.n_classes == 4 and len(dog.labels) == 8070 and len(dog.gold) == 807
    assert "github" in dog.source and "MIT" in dog.license
    for name in CROWD_SETS:
        crowd = load_crowd(name)
        assert crowd.labels["label"].max() < crowd.n_classes
        assert crowd.gold["task"].isin(crowd.labels["task"]).all()


def test_unknown_set_lists_the_available_ones():
    with pytest.raises(DataError, match="unknown crowd set 'cats'.*bluebird.*trec"):
        load_crowd("cats")


def test_mixed_pool_has_constant_and_random_spammers_and_neighbour_flipping_adversaries():
    conf = make_confusions(600, 3, "mixed", 0.3, np.random.default_rng(1))
    one_hot = np.isclose(conf.max(axis=2), 1.0).all(axis=1)
    constant = one_hot & (conf.argmax(axis=2) == conf[:, :1].argmax(axis=2)).all(axis=1)
    random = np.isclose(conf, 1 / 3).all(axis=(1, 2))
    adversary = np.isclose(conf[:, np.arange(3), (np.arange(3) + 1) % 3], 1 - 0.075).all(axis=1)
    assert 0.05 < constant.mean() < 0.15 and 0.05 < random.mean() < 0.15 and 0.05 < adversary.mean() < 0.15
