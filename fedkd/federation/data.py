"""Each client's share of the data and the noisy crowd labels it receives.

Everything is a pure function of the config: the server and every client (in any process, on any
machine) rebuild the same test split, partitions and annotator labels from the run seed, so nothing but
model weights and answers ever crosses the network. Results are cached per process, because a Ray actor
serves many clients and rounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import pandas as pd
import torch

from fedkd.config import ExperimentConfig
from fedkd.data import ImageDataset, load_dataset, partition
from fedkd.data.crowd import chunk_tasks, make_confusions, simulate_labels
from fedkd.errors import ConfigError
from fedkd.seeding import derive_seed, numpy_rng


@dataclass(frozen=True)
class ClientData:
    """One client's items, their hidden true labels (for ``label_acc`` only) and its label chunks.

    ``chunks[r]`` is the crowd labels (``task, worker, label``; tasks are local item indices) that arrive
    in round ``r + 1``.
    """

    partition_id: int
    x: torch.Tensor
    y_true: np.ndarray
    chunks: list[pd.DataFrame]
    n_classes: int
    confusions: np.ndarray


def train_test(cfg: ExperimentConfig) -> tuple[ImageDataset, ImageDataset]:
    """The pool the clients share out and the server's held-out test split."""
    return _train_test(_data_key(cfg))


def client_partitions(cfg: ExperimentConfig) -> list[np.ndarray]:
    """Indices into the train pool, one array per client."""
    return _partitions(_data_key(cfg))


def client_data(cfg: ExperimentConfig, partition_id: int) -> ClientData:
    n = cfg.federation.num_clients
    if not 0 <= partition_id < n:
        raise ConfigError(f"partition-id {partition_id} is outside 0..{n - 1} (federation.num_clients = {n})")
    return _client_data(_data_key(cfg), partition_id)


def _data_key(cfg: ExperimentConfig) -> str:
    """The config parts that decide the data, as a hashable cache key (the config turned into a dict once: it is
    asked for on every client message)."""
    sections = cfg.to_dict()
    return json.dumps({"seed": cfg.run.seed, **{name: sections[name] for name in ("data", "federation", "crowd")}},
                      sort_keys=True)


@lru_cache(maxsize=4)
def _train_test(key: str) -> tuple[ImageDataset, ImageDataset]:
    spec = json.loads(key)
    dataset = load_dataset(spec["data"]["dataset"], spec["data"]["path"] or None)
    return dataset.split(spec["data"]["test_fraction"], seed=derive_seed(spec["seed"], "test-split"))


@lru_cache(maxsize=4)
def _partitions(key: str) -> list[np.ndarray]:
    spec, fed = json.loads(key), json.loads(key)["federation"]
    train, _ = _train_test(key)
    return partition(
        train.y,
        fed["num_clients"],
        fed["partition"],
        alpha=fed["alpha"],
        shards_per_client=fed["shards_per_client"],
        min_size=fed["min_partition_size"],
        seed=derive_seed(spec["seed"], "partition"),
    )


@cache  # a Ray actor serves many clients: rebuilding a client's labels per message is waste
def _client_data(key: str, partition_id: int) -> ClientData:
    spec = json.loads(key)
    crowd = spec["crowd"]
    train, _ = _train_test(key)
    local = train.subset(_partitions(key)[partition_id])
    rng = numpy_rng(spec["seed"], "crowd", partition_id)
    confusions = make_confusions(
        crowd["annotators_per_client"], local.n_classes, crowd["noise_kind"], tuple(crowd["noise"]), rng
    )
    arrival = rng.permutation(len(local))
    labels = simulate_labels(
        local.y[arrival],
        confusions,
        crowd["labels_per_item"],
        rng,
        task_ids=arrival,
        worker_ids=[f"c{partition_id}-a{k}" for k in range(crowd["annotators_per_client"])],
    )
    x, _ = local.tensors()
    return ClientData(
        partition_id=partition_id,
        x=x,
        y_true=local.y,
        chunks=chunk_tasks(labels, n_chunks=crowd["chunks"]),
        n_classes=local.n_classes,
        confusions=confusions,
    )
