"""Synthetic crowds that reproduce where online aggregators fail, generated from one seed.

The bundled real sets are few and were used to design the aggregators, so a default chosen on them alone
can overfit. Each regime here isolates one way a real crowd stresses an online aggregator:

- ``many_workers``: binary, 2,000 workers (wrong 10-40 % of the time) with heavy-tailed activity, so most
  give a handful of labels and majority vote is already strong;
- ``ten_class_small``: 10 classes, about 4 labels per item and 700 items, so a 10 % chunk holds 70 items;
- ``imbalanced``: 3 classes at 80 / 15 / 5 %, class-dependent workers;
- ``hard_first``: items of varying difficulty (a hard item's labels are partly random), hardest first;
- ``spammers``: 40 % spammers and 15 % adversaries among good workers;
- ``one_coin``: every worker has one accuracy, its errors spread evenly (the one-coin model is exact);
- ``class_dependent``: binary workers with their own sensitivity and specificity.

:func:`simulate_regime` returns labels in the long format with gold truth for every task; tasks come in
the order an online aggregator should see them. :func:`simulate_large_crowd` is the speed workload
(about 215,000 labels from about 37,000 workers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedkd.data.crowd import make_confusions
from fedkd.errors import DataError
from fedkd.seeding import numpy_rng

REGIMES: tuple[str, ...] = ("many_workers", "ten_class_small", "imbalanced", "hard_first", "spammers",
                            "one_coin", "class_dependent")


@dataclass(frozen=True, eq=False)
class SyntheticCrowd:
    """A generated crowd: labels (``task, worker, label``), gold (``task, true_label``) and the true confusions."""

    name: str
    labels: pd.DataFrame
    gold: pd.DataFrame
    n_classes: int
    confusions: np.ndarray


def simulate_crowd(
    truth: np.ndarray,
    confusions: np.ndarray,
    labels_per_item: int,
    rng: np.random.Generator,
    activity: np.ndarray | None = None,
    difficulty: np.ndarray | None = None,
) -> pd.DataFrame:
    """Long-format labels: each item gets ``labels_per_item`` distinct workers, drawn with probability
    proportional to ``activity`` (uniform by default); worker k answers from ``confusions[k, true]``, except
    that with probability ``difficulty[i]`` its label for item i is uniformly random instead."""
    truth = np.asarray(truth, dtype=np.int64)
    K, C = confusions.shape[0], confusions.shape[-1]
    L = int(labels_per_item)
    weights = np.ones(K) if activity is None else np.asarray(activity, dtype=np.float64)
    if not 1 <= L <= K or weights.shape != (K,) or (weights <= 0).any():
        raise DataError(f"need 1 <= labels_per_item <= {K} workers and one positive activity per worker")
    cdf = np.cumsum(weights) / weights.sum()
    chosen = np.minimum(np.searchsorted(cdf, rng.random((truth.size, L)), side="right"), K - 1)
    for _ in range(1000):  # redraw every item that drew a worker twice: sampling without replacement
        ordered = np.sort(chosen, axis=1)
        repeat = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeat.any():
            break
        redraw = np.searchsorted(cdf, rng.random((int(repeat.sum()), L)), side="right")
        chosen[repeat] = np.minimum(redraw, K - 1)
    else:
        raise DataError("could not draw distinct workers per item: the activity is too concentrated")
    true_rows = np.repeat(truth, L)
    rows = np.tile(np.arange(truth.size), (L, 1)).T.ravel()
    cdf_rows = np.cumsum(confusions, axis=-1)[chosen.ravel(), true_rows]
    labels = np.minimum((rng.random(rows.size)[:, None] >= cdf_rows).sum(axis=1), C - 1)
    if difficulty is not None:
        random_label = rng.random(rows.size) < np.asarray(difficulty)[rows]
        labels = np.where(random_label, rng.integers(0, C, size=rows.size), labels)
    return pd.DataFrame({"task": rows, "worker": chosen.ravel(), "label": labels.astype(np.int64)})


def _mix(pools: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The workers of several pools together, in random order."""
    stacked = np.concatenate(pools)
    return stacked[rng.permutation(len(stacked))]


def _sensitivity_specificity(n: int, rng: np.random.Generator) -> np.ndarray:
    """Binary workers, each with its own P(label 0 | 0) and P(label 1 | 1) in [0.55, 1)."""
    right = rng.uniform(0.55, 1.0, size=(n, 2))
    return np.stack([np.stack([right[:, 0], 1 - right[:, 0]], 1), np.stack([1 - right[:, 1], right[:, 1]], 1)], 1)


def simulate_regime(name: str, seed: int = 0) -> SyntheticCrowd:
    """The regime ``name`` (one of :data:`REGIMES`), generated from ``seed``; every draw has its own stream."""
    if name not in REGIMES:
        raise DataError(f"unknown crowd regime {name!r}; choose one of {', '.join(REGIMES)}")
    rng = numpy_rng(seed, "crowd", "regime", name)
    activity, difficulty, order = None, None, None
    if name == "many_workers":
        C, n_tasks, per_item, K = 2, 4000, 5, 2000
        conf = make_confusions(K, C, "uniform", (0.1, 0.4), rng)
        activity = rng.pareto(1.2, size=K) + 1.0
        activity = np.minimum(activity, np.quantile(activity, 0.995))
    elif name == "ten_class_small":
        C, n_tasks, per_item, K = 10, 700, 4, 40
        conf = make_confusions(K, C, "mixed", (0.2, 0.4), rng)
    elif name == "imbalanced":
        C, n_tasks, per_item, K = 3, 3000, 3, 60
        conf = make_confusions(K, C, "class_dependent", (0.15, 0.45), rng)
    elif name == "hard_first":
        C, n_tasks, per_item, K = 4, 2000, 5, 60
        conf = make_confusions(K, C, "class_dependent", (0.1, 0.35), rng)
        difficulty = rng.beta(1.0, 2.5, size=n_tasks)
        order = np.argsort(-difficulty, kind="stable")
    elif name == "spammers":
        C, n_tasks, per_item, K = 2, 2000, 7, 80
        good = make_confusions(36, C, "uniform", (0.05, 0.3), rng)
        spam = make_confusions(32, C, "uniform", 0.5, rng)
        adversary = make_confusions(12, C, "uniform", (0.7, 0.9), rng)
        conf = _mix([good, spam, adversary], rng)
    elif name == "one_coin":
        C, n_tasks, per_item, K = 4, 2000, 5, 100
        conf = make_confusions(K, C, "uniform", (0.05, 0.65), rng)
    else:  # class_dependent
        C, n_tasks, per_item, K = 2, 3000, 5, 100
        conf = _sensitivity_specificity(K, rng)
    prior = np.array([0.8, 0.15, 0.05]) if name == "imbalanced" else np.full(C, 1.0 / C)
    truth = rng.choice(C, size=n_tasks, p=prior)
    labels = simulate_crowd(truth, conf, per_item, rng, activity=activity, difficulty=difficulty)
    if order is not None:
        rank = np.empty(n_tasks, dtype=np.int64)
        rank[order] = np.arange(n_tasks)
        labels = labels.assign(task=rank[labels["task"]]).sort_values("task", kind="stable").reset_index(drop=True)
        truth = truth[order]
    gold = pd.DataFrame({"task": np.arange(n_tasks), "true_label": truth})
    return SyntheticCrowd(name, labels, gold, C, conf)


def simulate_large_crowd(n_tasks: int = 43_000, n_workers: int = 39_000, labels_per_item: int = 5,
                         seed: int = 0) -> SyntheticCrowd:
    """The speed workload: binary, ``n_tasks * labels_per_item`` labels (215,000 by default) from
    ``n_workers`` workers of mixed skill with heavy-tailed activity, most of them giving a handful."""
    rng = numpy_rng(seed, "crowd", "regime", "large")
    conf = make_confusions(n_workers, 2, "mixed", (0.2, 0.35), rng)
    activity = rng.pareto(1.5, size=n_workers) + 1.0
    activity = np.minimum(activity, np.quantile(activity, 0.999))
    truth = rng.integers(0, 2, size=n_tasks)
    labels = simulate_crowd(truth, conf, labels_per_item, rng, activity=activity)
    return SyntheticCrowd("large", labels, pd.DataFrame({"task": np.arange(n_tasks), "true_label": truth}), 2, conf)
