"""One client's round: take in the label chunk that arrived, aggregate it online, train the local model.

The aggregator sees each chunk exactly once and the labels it emits for a chunk are final, as in a real
deployment where annotations stream in. Its state is returned to the caller (a Flower node keeps it in
its per-node state). A node that lost its state (a restart, a resumed simulation) replays the chunks of
the rounds it missed from the seed, so it ends in exactly the state it would have had.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from fedkd.aggregation import build_aggregator
from fedkd.config import ExperimentConfig
from fedkd.errors import FedkdError
from fedkd.federation.data import ClientData
from fedkd.models import build_classifier
from fedkd.seeding import derive_seed, numpy_rng, seed_torch, torch_generator
from fedkd.train import EarlyStopping, predict_logits, train_classifier


@dataclass
class ClientState:
    """What outlives a round on a node: the last round ingested, emitted labels (-1: none yet), the aggregator,
    and, under data-free strategies, the client's own model and the round it was last trained in."""

    round: int
    labels: np.ndarray
    aggregator: dict[str, Any] = field(default_factory=dict)
    model: dict[str, torch.Tensor] | None = None
    model_round: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalResult:
    weights: dict[str, torch.Tensor]
    num_examples: int
    metrics: dict[str, float]


def ingest_labels(cfg: ExperimentConfig, data: ClientData, state: ClientState | None, round: int) -> ClientState:
    """Bring ``state`` up to ``round``: every chunk of rounds after ``state.round`` goes through the aggregator once."""
    agg = build_aggregator(
        cfg.client.aggregator,
        data.n_classes,
        seed=derive_seed(cfg.run.seed, "aggregator", data.partition_id),
        **cfg.client.aggregator_options.get(cfg.client.aggregator, {}),
    )
    if state is None:
        state = ClientState(round=0, labels=np.full(len(data.y_true), -1, dtype=np.int64))
    else:
        agg.load_state_dict(state.aggregator)
    labels = state.labels.copy()
    for r in range(state.round + 1, round + 1):
        if r <= len(data.chunks):
            chunk = data.chunks[r - 1]
            agg.partial_fit(chunk)
            emitted = agg.predict(chunk)
            labels[emitted.index.to_numpy(dtype=np.int64)] = emitted.to_numpy(dtype=np.int64)
    return replace(state, round=max(round, state.round), labels=labels, aggregator=agg.state_dict())


def label_counts(labels: np.ndarray, n_classes: int) -> list[int]:
    """How many of the client's items carry each aggregated label: what class-aware answer combination weighs by."""
    return np.bincount(labels[labels >= 0], minlength=n_classes).tolist()


def label_accuracy(data: ClientData, labels: np.ndarray) -> float:
    """Agreement of the client's aggregated labels with the hidden truth, over the items labelled so far."""
    known = labels >= 0
    return float((labels[known] == data.y_true[known]).mean()) if known.any() else float("nan")


def build_model(
    cfg: ExperimentConfig, data_shape: tuple[int, int, int], n_classes: int, architecture: str | None = None
) -> torch.nn.Module:
    channels, size, _ = data_shape
    return build_classifier(architecture or cfg.client.model, channels, size, n_classes).to(cfg.run.device)


def client_architecture(cfg: ExperimentConfig, partition_id: int) -> str:
    """The client's own model: ``client.architectures`` cycled over partitions, else ``client.model``."""
    archs = cfg.client.architectures
    return archs[partition_id % len(archs)] if archs else cfg.client.model


def local_train(
    cfg: ExperimentConfig,
    data: ClientData,
    state: ClientState,
    weights: dict[str, torch.Tensor] | None,
    round: int,
    architecture: str | None = None,
) -> LocalResult:
    """Train ``weights`` (a fresh, seeded model when None) on this client's aggregated labels.

    Reports ``train_loss`` and ``label_acc``, and with held-out labels (``client.val_fraction``) ``val_acc`` (the
    best epoch's agreement with them) and the ``epochs`` run.
    """
    known = np.flatnonzero(state.labels >= 0)
    seed_torch(cfg.run.seed, "client-init", data.partition_id)
    model = build_model(cfg, tuple(data.x.shape[1:]), data.n_classes, architecture)
    if weights is not None:
        model.load_state_dict(weights)
    device = cfg.run.device
    held_out = known[held_out_items(cfg, data)[known]]
    train_items = np.setdiff1d(known, held_out)
    early_stopping = None
    if len(held_out):
        early_stopping = EarlyStopping(data.x[held_out].to(device),
                                       torch.as_tensor(state.labels[held_out], device=device), cfg.client.patience)
    result = train_classifier(
        model,
        data.x[train_items].to(device),
        torch.as_tensor(state.labels[train_items], device=device),
        epochs=cfg.client.local_epochs,
        batch_size=cfg.client.batch_size,
        lr=cfg.client.lr,
        optimizer=cfg.client.optimizer,
        generator=torch_generator(cfg.run.seed, "local-train", data.partition_id, round),
        augment=cfg.client.augment,
        early_stopping=early_stopping,
        precision=cfg.run.precision,
    )
    metrics = {"train_loss": result.loss, "label_acc": label_accuracy(data, state.labels)}
    if result.val_acc is not None:
        metrics.update(val_acc=result.val_acc, epochs=float(result.epochs))
    return LocalResult(
        weights={k: v.detach().cpu() for k, v in model.state_dict().items()},
        num_examples=len(known),
        metrics=metrics,
    )


def held_out_items(cfg: ExperimentConfig, data: ClientData) -> np.ndarray:
    """Which of the client's items are held out for early stopping (``client.val_fraction``): one seeded draw per
    item, so an item stays on its side as more labels arrive. Always leaves at least one item to train on."""
    if not cfg.client.val_fraction:
        return np.zeros(len(data.y_true), dtype=bool)
    draws = numpy_rng(cfg.run.seed, "client-held-out", data.partition_id).random(len(data.y_true))
    held_out = draws < cfg.client.val_fraction
    if held_out.all():
        held_out[np.argmax(draws)] = False
    return held_out


def own_model_round(cfg: ExperimentConfig, data: ClientData, state: ClientState | None, round: int) -> ClientState:
    """Bring the client's own model up to ``round`` (data-free strategies: its weights never leave the node).

    Each round takes in that round's labels and continues training the model on all labels so far; rounds a
    node missed (a restart, a resumed run) are replayed from the seed, so the model is the one it would have had.
    """
    state = state if state is not None else ingest_labels(cfg, data, None, 0)
    architecture = client_architecture(cfg, data.partition_id)
    for r in range(state.model_round + 1, round + 1):
        state = ingest_labels(cfg, data, state, r)
        weights = state.model
        if weights is None and cfg.client.shared_init:
            weights = shared_initial_weights(cfg, tuple(data.x.shape[1:]), data.n_classes, architecture)
        result = local_train(cfg, data, state, weights, r, architecture)
        state = replace(state, model=result.weights, model_round=r, last_metrics=result.metrics)
    return state


def shared_initial_weights(
    cfg: ExperimentConfig, data_shape: tuple[int, int, int], n_classes: int, architecture: str
) -> dict[str, torch.Tensor]:
    """The initialisation every client shares under ``client.shared_init``: the one FedAvg's global model starts
    from (the same seed stream), so a homogeneous federation's own models average as in one-shot FedAvg."""
    seed_torch(cfg.run.seed, "global-init")
    return {k: v.detach().cpu() for k, v in build_model(cfg, data_shape, n_classes, architecture).state_dict().items()}


def answer_queries(
    cfg: ExperimentConfig, data: ClientData, state: ClientState, x: torch.Tensor, mode: str
) -> torch.Tensor:
    """The client's own model's answers: class indices in ``label`` mode (nothing else leaves), else probabilities."""
    if state.model is None:
        raise FedkdError(f"client {data.partition_id} has no model yet: a training round must come before queries")
    model = build_model(cfg, tuple(data.x.shape[1:]), data.n_classes, client_architecture(cfg, data.partition_id))
    model.load_state_dict(state.model)
    logits = predict_logits(model, x.to(cfg.run.device))
    if mode == "label":
        return logits.argmax(dim=1).cpu()
    if mode == "proba":
        return torch.softmax(logits.float(), dim=1).cpu()
    raise FedkdError(f"query mode {mode!r} is not one of ('label', 'proba')")
