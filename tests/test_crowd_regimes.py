"""Synthetic crowd regimes: seeded, and each with the property it is meant to stress."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedkd.aggregation import MajorityVote
from fedkd.data.crowd import gold_accuracy, validate_crowd
from fedkd.data.crowd_regimes import REGIMES, simulate_crowd, simulate_large_crowd, simulate_regime
from fedkd.errors import DataError


@pytest.mark.parametrize("name", REGIMES)
def test_regimes_are_valid_seeded_crowds(name):
    crowd = simulate_regime(name, seed=3)
    again = simulate_regime(name, seed=3)
    pd.testing.assert_frame_equal(crowd.labels, again.labels)
    assert not crowd.labels.equals(simulate_regime(name, seed=4).labels)
    validate_crowd(crowd.labels, crowd.n_classes)
    assert set(crowd.gold["task"]) == set(crowd.labels["task"])
    assert not crowd.labels.duplicated(["task", "worker"]).any()
    assert crowd.confusions.shape[1:] == (crowd.n_classes, crowd.n_classes)


def test_regimes_have_the_property_they_stress():
    many = simulate_regime("many_workers").labels["worker"].value_counts()
    assert len(many) > 1500 and many.median() <= 10 and many.max() > 100
    ten = simulate_regime("ten_class_small")
    assert ten.n_classes == 10 and ten.labels.groupby("task").size().eq(4).all() and ten.gold.shape[0] == 700
    shares = simulate_regime("imbalanced").gold["true_label"].value_counts(normalize=True)
    assert shares.iloc[0] == pytest.approx(0.8, abs=0.03)
    hard = simulate_regime("hard_first")
    mv = MajorityVote(hard.n_classes).fit_predict(hard.labels)
    first, last = hard.gold.iloc[:200], hard.gold.iloc[-200:]
    assert gold_accuracy(mv, first)[0] + 0.15 < gold_accuracy(mv, last)[0]


def test_large_crowd_is_the_speed_workload():
    crowd = simulate_large_crowd()
    assert len(crowd.labels) == 215_000
    assert 35_000 < crowd.labels["worker"].nunique() < 39_000
    assert crowd.labels["worker"].value_counts().median() <= 6


def test_simulate_crowd_rejects_too_few_workers():
    with pytest.raises(DataError, match="labels_per_item"):
        simulate_crowd(np.zeros(5, dtype=int), np.tile(np.eye(2), (3, 1, 1)), 4, np.random.default_rng(0))
