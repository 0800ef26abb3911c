"""Split a labelled set among federated clients: IID, Dirichlet(alpha) over labels, or label shards.

Every partitioner returns one sorted int64 index array per client; the arrays are disjoint and cover
all examples, and the same ``seed`` gives the same split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedkd.errors import ConfigError, DataError
from fedkd.seeding import numpy_rng

METHODS = ("iid", "dirichlet", "shards")


def _iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random permutation cut into ``num_clients`` near-equal pieces (sizes differ by at most one)."""
    return np.array_split(rng.permutation(len(labels)), num_clients)


def _dirichlet_once(labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """For each class c, draw p_c ~ Dir(alpha * 1_K) and deal the class's examples to clients in proportions p_c.

    Small alpha concentrates each class on few clients (strong label skew); large alpha tends to IID.
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
        for client, piece in enumerate(np.split(members, cuts)):
            parts[client].append(piece)
    return [np.concatenate(p) for p in parts]


def _dirichlet(labels: np.ndarray, num_clients: int, alpha: float, min_size: int, max_tries: int,
               rng: np.random.Generator) -> list[np.ndarray]:
    """Dirichlet partitions, redrawn until every client holds at least ``min_size`` examples."""
    for _ in range(max_tries):
        parts = _dirichlet_once(labels, num_clients, alpha, rng)
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise DataError(f"dirichlet partition with alpha={alpha} gave some client fewer than min_size={min_size} "
                    f"examples in all {max_tries} tries ({len(labels)} examples, {num_clients} clients); "
                    f"raise alpha, lower min_size or use fewer clients")


def _shards(labels: np.ndarray, num_clients: int, shards_per_client: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by label (ties in random order), cut into ``num_clients * shards_per_client`` equal shards, deal
    them at random.

    With 2 shards per client most clients see only two classes (McMahan et al., 2017).
    """
    shuffled = rng.permutation(len(labels))
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    shards = np.array_split(by_label, num_clients * shards_per_client)
    order = rng.permutation(len(shards)).reshape(num_clients, shards_per_client)
    return [np.concatenate([shards[s] for s in row]) for row in order]


def partition(labels: np.ndarray, num_clients: int, method: str = "iid", *, alpha: float = 0.5,
              shards_per_client: int = 2, min_size: int = 10, seed: int = 0,
              max_tries: int = 1000) -> list[np.ndarray]:
    """Index arrays, one per client, that split ``labels`` by ``method`` ("iid", "dirichlet" or "shards").

    >>> parts = partition(np.repeat(np.arange(10), 50), num_clients=5, method="dirichlet", alpha=0.3, seed=1)
    >>> sum(len(p) for p in parts)
    500
    """
    labels = np.asarray(labels)
    if method not in METHODS:
        raise ConfigError(f"unknown partition method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)) or num_clients < 1:
        raise ConfigError(f"num_clients must be a positive integer, got {num_clients!r}")
    if min_size < 0:
        raise ConfigError(f"min_size must be >= 0, got {min_size}")
    if num_clients * min_size > len(labels):
        raise ConfigError(f"{num_clients} clients with min_size={min_size} need {num_clients * min_size} examples, "
                          f"only {len(labels)} given")
    rng = numpy_rng(seed, "partition", method)
    if method == "iid":
        parts = _iid(labels, num_clients, rng)
    elif method == "dirichlet":
        if not (np.isfinite(alpha) and alpha > 0):
            raise ConfigError(f"dirichlet alpha must be a positive finite number, got {alpha!r}")
        parts = _dirichlet(labels, num_clients, alpha, min_size, max_tries, rng)
    else:
        if shards_per_client < 1:
            raise ConfigError(f"shards_per_client must be >= 1, got {shards_per_client}")
        if num_clients * shards_per_client > len(labels):
            raise ConfigError(f"{num_clients} clients x {shards_per_client} shards exceed the {len(labels)} examples")
        parts = _shards(labels, num_clients, shards_per_client, rng)
    smallest = min(len(p) for p in parts)
    if smallest < min_size:
        raise ConfigError(f"{method} partition gives a client only {smallest} examples, below min_size={min_size}; "
                          f"use fewer clients or a lower min_size")
    return [np.sort(p).astype(np.int64) for p in parts]


def partition_summary(labels: np.ndarray, parts: list[np.ndarray], n_classes: int) -> pd.DataFrame:
    """One row per client: ``client``, ``size`` and the class histogram ``class_0 .. class_{C-1}``."""
    labels = np.asarray(labels)
    rows = []
    for client, idx in enumerate(parts):
        counts = np.bincount(labels[idx], minlength=n_classes)
        if len(counts) > n_classes:
            raise DataError(f"labels reach class {len(counts) - 1}, beyond n_classes={n_classes}")
        rows.append({"client": client, "size": len(idx), **{f"class_{c}": int(n) for c, n in enumerate(counts)}})
    return pd.DataFrame(rows, columns=["client", "size", *(f"class_{c}" for c in range(n_classes))])
