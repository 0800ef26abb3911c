"""Label aggregators: the shared interface, recovery of known confusions, online guarantees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedkd.aggregation import AGGREGATORS, MajorityVote, build_aggregator
from fedkd.data.crowd import chunk_tasks, make_confusions, simulate_labels
from fedkd.errors import ConfigError, DataError

METHODS = sorted({cls.name for cls in AGGREGATORS.values()})


def _crowd(n_tasks=3000, n_workers=8, n_classes=3, noise=(0.1, 0.5), kind="uniform", labels_per_item=5, seed=0):
    rng = np.random.default_rng(seed)
    conf = make_confusions(n_workers, n_classes, kind, noise, rng)
    truth = rng.integers(0, n_classes, size=n_tasks)
    return simulate_labels(truth, conf, labels_per_item, rng), truth, conf


def _online(agg, df, n_chunks):
    return pd.concat([agg.partial_fit(chunk).predict(chunk) for chunk in chunk_tasks(df, n_chunks=n_chunks)])


def test_majority_vote_example_and_probabilities():
    df = pd.DataFrame({"task": ["x"] * 3 + ["y"] * 3, "worker": ["a", "b", "c"] * 2, "label": [1, 1, 0, 2, 2, 2]})
    mv = MajorityVote(n_classes=3)
    assert mv.fit_predict(df).to_dict() == {"x": 1, "y": 2}
    np.testing.assert_allclose(mv.predict_proba(df).loc["x"], [1 / 3, 2 / 3, 0])


def test_majority_vote_ties_are_seeded_and_chunking_independent():
    tasks = np.repeat(np.arange(400), 2)
    df = pd.DataFrame({"task": tasks, "worker": np.tile([0, 1], 400), "label": np.tile([0, 1], 400)})
    first = MajorityVote(2, seed=1).fit_predict(df)
    assert first.equals(MajorityVote(2, seed=1).fit_predict(df))
    assert first.equals(_online(MajorityVote(2, seed=1), df, n_chunks=7))
    assert 150 < first.sum() < 250  # every task is a tie: about half go each way
    assert not first.equals(MajorityVote(2, seed=2).fit_predict(df))


def test_majority_vote_reliability_breaks_ties_towards_the_trusted_worker():
    history = pd.DataFrame({"task": np.repeat([0, 1, 2], 3), "worker": ["good", "bad", "x"] * 3,
                            "label": [0, 1, 0, 1, 0, 1, 2, 0, 2]})
    tie = pd.DataFrame({"task": [9, 9], "worker": ["good", "bad"], "label": [2, 1]})
    mv = MajorityVote(3, tie_break="reliability").partial_fit(history)
    assert mv.partial_fit(tie).predict(tie).loc[9] == 2


def test_registry_builds_by_name_and_lists_names_on_error():
    assert isinstance(build_aggregator("mv", 4, seed=3), MajorityVote)
    with pytest.raises(ConfigError, match="unknown aggregator 'em'.*mv"):
        build_aggregator("em", 3)
    with pytest.raises(ConfigError, match="n_classes"):
        build_aggregator("mv", 1)


@pytest.mark.parametrize("method", METHODS)
def test_invalid_chunks_raise_clear_errors(method):
    agg = build_aggregator(method, 3)
    with pytest.raises(DataError, match="missing column.*label"):
        agg.partial_fit(pd.DataFrame({"task": [1], "worker": [1]}))
    with pytest.raises(DataError, match="outside the allowed range.*0..2"):
        agg.partial_fit(pd.DataFrame({"task": [1], "worker": [1], "label": [5]}))
    with pytest.raises(DataError, match="no rows"):
        agg.partial_fit(pd.DataFrame({"task": [], "worker": [], "label": []}))
    with pytest.raises(DataError, match="non-integer"):
        agg.partial_fit(pd.DataFrame({"task": [1], "worker": [1], "label": [0.5]}))


@pytest.mark.parametrize("method", METHODS)
def test_state_round_trip_gives_identical_later_results(method):
    df, _, _ = _crowd(n_tasks=600, seed=4)
    chunks = chunk_tasks(df, n_chunks=3)
    original = build_aggregator(method, 3, seed=7).partial_fit(chunks[0])
    state = original.state_dict()
    for key, value in state.items():
        assert isinstance(value, (np.ndarray, int, float, str, list)), key
    restored = build_aggregator(method, 3, seed=0)
    restored.load_state_dict(state)
    for chunk in chunks[1:]:
        pd.testing.assert_frame_equal(original.partial_fit(chunk).predict_proba(chunk),
                                      restored.partial_fit(chunk).predict_proba(chunk))
        assert original.predict(chunk).equals(restored.predict(chunk))


@pytest.mark.parametrize("method", METHODS)
def test_duplicate_rows_warn_and_keep_the_last(method):
    df = pd.DataFrame({"task": [1, 1, 1, 1], "worker": ["a", "b", "c", "a"], "label": [0, 1, 1, 1]})
    with pytest.warns(UserWarning, match="duplicate"):
        agg = build_aggregator(method, 2).partial_fit(df)
    with pytest.warns(UserWarning, match="duplicate"):
        assert agg.predict(df).loc[1] == 1
