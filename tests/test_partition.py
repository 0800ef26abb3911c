"""Partitioners: disjoint covering splits, sizes, Dirichlet skew against alpha, seeds, errors, summary table."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedkd.data import partition, partition_summary
from fedkd.errors import ConfigError, DataError

LABELS = np.repeat(np.arange(10), 100)  # 1,000 examples, 100 per class, sorted like mnist5k


def _label_entropy(labels, parts):
    """Mean over clients of the entropy (nats) of the client's label distribution: log(10) for IID, 0 for one class."""
    entropies = []
    for idx in parts:
        p = np.bincount(labels[idx], minlength=10) / len(idx)
        entropies.append(-(p[p > 0] * np.log(p[p > 0])).sum())
    return float(np.mean(entropies))


@pytest.mark.parametrize("method", ["iid", "dirichlet", "shards"])
def test_parts_are_disjoint_and_cover_every_example(method):
    parts = partition(LABELS, 7, method, seed=3)
    assert len(parts) == 7
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(len(LABELS)))
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)


@given(n=st.integers(20, 300), clients=st.integers(1, 10), method=st.sampled_from(["iid", "dirichlet", "shards"]),
       seed=st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_any_size_splits_into_a_disjoint_cover(n, clients, method, seed):
    labels = np.random.default_rng(seed).integers(0, 4, n)
    parts = partition(labels, clients, method, alpha=1.0, shards_per_client=2, min_size=1, seed=seed)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))
    assert min(len(p) for p in parts) >= 1


def test_iid_sizes_differ_by_at_most_one_and_classes_mix():
    parts = partition(LABELS, 3, "iid", seed=0)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 1000
    assert _label_entropy(LABELS, parts) > 0.95 * np.log(10)


def test_same_seed_same_split_other_seed_other_split():
    for method in ("iid", "dirichlet", "shards"):
        first = partition(LABELS, 5, method, seed=11)
        again = partition(LABELS, 5, method, seed=11)
        other = partition(LABELS, 5, method, seed=12)
        assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=False))
        assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=False))


def test_smaller_alpha_gives_stronger_label_skew():
    entropy = {alpha: np.mean([_label_entropy(LABELS,
                                              partition(LABELS, 10, "dirichlet", alpha=alpha, min_size=5, seed=s))
                               for s in range(5)])
               for alpha in (0.1, 1.0, 100.0)}
    assert entropy[0.1] < entropy[1.0] < entropy[100.0]
    assert entropy[100.0] > 0.95 * np.log(10)  # large alpha is close to IID
    assert entropy[0.1] < 0.6 * np.log(10)


def test_dirichlet_respects_min_size():
    for seed in range(5):
        parts = partition(LABELS, 20, "dirichlet", alpha=0.1, min_size=15, seed=seed)
        assert min(len(p) for p in parts) >= 15


def test_dirichlet_gives_up_with_a_clear_error_when_min_size_is_unreachable():
    with pytest.raises(DataError, match="min_size=90"):
        partition(LABELS, 10, "dirichlet", alpha=0.01, min_size=90, seed=0, max_tries=20)


def test_two_shards_per_client_give_at_most_two_classes():
    parts = partition(LABELS, 10, "shards", shards_per_client=2, seed=0)  # 20 shards of 50: one class each
    assert all(len(np.unique(LABELS[p])) <= 2 for p in parts)
    assert all(len(p) == 100 for p in parts)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "random"}, "iid, dirichlet, shards"),
    ({"num_clients": 0}, "num_clients"),
    ({"num_clients": 2.5}, "num_clients"),
    ({"method": "dirichlet", "alpha": 0.0}, "alpha"),
    ({"method": "dirichlet", "alpha": float("nan")}, "alpha"),
    ({"method": "shards", "shards_per_client": 0}, "shards_per_client"),
    ({"num_clients": 200, "min_size": 10}, "min_size=10"),
])
def test_bad_arguments_raise_config_errors(kwargs, match):
    args = {"num_clients": 4, "method": "iid", **kwargs}
    with pytest.raises(ConfigError, match=match):
        partition(LABELS, args.pop("num_clients"), args.pop("method"), **args)


def test_summary_table_counts_sizes_and_classes():
    parts = partition(LABELS, 4, "shards", seed=0)
    table = partition_summary(LABELS, parts, n_classes=10)
    assert list(table.columns) == ["client", "size"] + [f"class_{c}" for c in range(10)]
    assert table["client"].tolist() == [0, 1, 2, 3]
    assert table["size"].tolist() == [len(p) for p in parts]
    class_counts = table[[f"class_{c}" for c in range(10)]]
    assert (class_counts.sum(axis=1) == table["size"]).all()
    assert class_counts.sum(axis=0).tolist() == [100] * 10
