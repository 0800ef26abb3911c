"""The interface every label aggregator implements, and the bookkeeping they share.

An aggregator reads crowd labels in long format (``task, worker, label``) one chunk at a time:
``partial_fit(chunk)`` updates what it knows about the workers without ever revisiting earlier
chunks, and ``predict(chunk)`` / ``predict_proba(chunk)`` estimate the true class of the chunk's tasks.
``fit`` / ``fit_predict`` are the offline conveniences (crowd-kit style: ``fit`` returns ``self``).

Everything needed to continue online learning is in ``state_dict()``, made only of numpy arrays,
scalars, strings and lists of them, so a federated client can keep it between rounds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from fedkd.data.crowd import validate_crowd
from fedkd.errors import ConfigError
from fedkd.seeding import derive_seed

StateDict = dict[str, Any]
_TIE_TOL = 1e-9


@dataclass(frozen=True)
class EncodedChunk:
    """A validated chunk as integer codes: tasks in order of first appearance, workers as positions in
    the aggregator's worker list (``-1`` for a worker it has never seen)."""

    tasks: pd.Index
    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)


class Aggregator(ABC):
    """Base class of label aggregators: worker bookkeeping, seeded tie-breaking, state round-trip."""

    name: ClassVar[str]

    def __init__(self, n_classes: int, seed: int = 0) -> None:
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise ConfigError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.n_classes = int(n_classes)
        self.seed = int(seed)
        self._reset()

    # --- the public interface -------------------------------------------------------------------

    def partial_fit(self, chunk: pd.DataFrame) -> Self:
        """Learn from one chunk of labels (online); earlier chunks are never revisited."""
        self._update(self._encode(chunk, grow=True))
        self.n_chunks_seen_ += 1
        return self

    def predict_proba(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """Posterior class probabilities of the chunk's tasks (task x class), with the current state."""
        enc = self._encode(chunk, grow=False)
        return pd.DataFrame(self._proba(enc), index=enc.tasks, columns=pd.RangeIndex(self.n_classes))

    def predict(self, chunk: pd.DataFrame) -> pd.Series:
        """Most probable class of each task of the chunk; ties broken as :meth:`_decide` says."""
        enc = self._encode(chunk, grow=False)
        return pd.Series(self._decide(enc, self._proba(enc)), index=enc.tasks, name="label")

    def fit(self, df: pd.DataFrame) -> Self:
        """Offline: forget everything, then learn from all of ``df`` as one chunk."""
        self._reset()
        return self.partial_fit(df)

    def fit_predict(self, df: pd.DataFrame) -> pd.Series:
        return self.fit(df).predict(df)

    def fit_predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.fit(df).predict_proba(df)

    @abstractmethod
    def worker_confusions(self) -> dict[Hashable, np.ndarray]:
        """Each seen worker's estimated C x C confusion matrix, ``[true class, given label]``, rows summing to 1."""

    def state_dict(self) -> StateDict:
        """Everything needed to continue online learning: numpy arrays, scalars, strings and lists."""
        return {
            "method": self.name,
            "n_classes": self.n_classes,
            "seed": self.seed,
            "n_chunks_seen": self.n_chunks_seen_,
            "workers": list(self.workers_),
            **self._state_arrays(),
        }

    def load_state_dict(self, state: StateDict) -> None:
        """Restore a :meth:`state_dict`, so that later calls give exactly what the original would have."""
        if state.get("method") != self.name or int(state.get("n_classes", -1)) != self.n_classes:
            raise ConfigError(
                f"state is for method {state.get('method')!r} with {state.get('n_classes')} classes; "
                f"this aggregator is {self.name!r} with {self.n_classes}"
            )
        self.seed = int(state["seed"])
        self.n_chunks_seen_ = int(state["n_chunks_seen"])
        self.workers_ = list(state["workers"])
        self._load_arrays(state)

    # --- what each method provides --------------------------------------------------------------

    def _reset(self) -> None:
        """Forget all workers and statistics. Subclasses extend it with their own fitted arrays."""
        self.workers_: list[Hashable] = []
        self.n_chunks_seen_ = 0

    @abstractmethod
    def _update(self, enc: EncodedChunk) -> None:
        """Learn from one encoded chunk; new workers already have positions in ``workers_``."""

    @abstractmethod
    def _proba(self, enc: EncodedChunk) -> np.ndarray:
        """(n_tasks, C) class probabilities; unseen workers (code -1) must be handled."""

    @abstractmethod
    def _state_arrays(self) -> StateDict:
        """The method's own fitted arrays and scalars for :meth:`state_dict`."""

    @abstractmethod
    def _load_arrays(self, state: StateDict) -> None:
        """Restore what :meth:`_state_arrays` saved."""

    def _tie_key(self, enc: EncodedChunk) -> np.ndarray | None:
        """A secondary score that breaks ties of the probabilities before the seeded random draw."""
        return None

    # --- shared helpers -------------------------------------------------------------------------

    @property
    def n_workers(self) -> int:
        return len(self.workers_)

    def _encode(self, chunk: pd.DataFrame, grow: bool) -> EncodedChunk:
        """Validate a chunk and turn it into codes; with ``grow``, unseen workers are appended."""
        df = validate_crowd(chunk, self.n_classes)
        task, tasks = pd.factorize(df["task"])
        known = pd.Index(self.workers_)
        worker = known.get_indexer(df["worker"]) if len(known) else np.full(len(df), -1, dtype=np.int64)
        if grow and (worker < 0).any():
            new = pd.unique(df["worker"].to_numpy()[worker < 0])
            self.workers_.extend(new.tolist())
            worker = pd.Index(self.workers_).get_indexer(df["worker"])
        return EncodedChunk(tasks=pd.Index(tasks, name="task"), task=task, worker=worker.astype(np.int64),
                            label=df["label"].to_numpy(dtype=np.int64))

    def _decide(self, enc: EncodedChunk, proba: np.ndarray) -> np.ndarray:
        """Argmax per task. Ties (within 1e-9) go to the higher :meth:`_tie_key`, then to a seeded
        pseudo-random class drawn from a hash of (seed, task id, class): the same task breaks its tie
        the same way whatever chunk it arrives in and however often it is predicted."""
        tied = proba >= proba.max(axis=1, keepdims=True) - _TIE_TOL
        key = self._tie_key(enc)
        if key is not None:
            key = np.where(tied, key, -np.inf)
            tied &= key >= key.max(axis=1, keepdims=True) - _TIE_TOL
        draw = _tie_draw(enc.tasks, self.n_classes, self.seed)
        return np.argmax(np.where(tied, draw, -1.0), axis=1).astype(np.int64)


def predict_online(agg: Aggregator, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.Series]:
    """Feed chunks to ``agg`` one at a time and yield each chunk's labels as emitted on its arrival.

    This is the online protocol: a task's label is fixed when its chunk arrives and is never revised.
    """
    for chunk in chunks:
        yield agg.partial_fit(chunk).predict(chunk)


def _tie_draw(tasks: pd.Index, n_classes: int, seed: int) -> np.ndarray:
    """(n_tasks, C) uniform numbers in [0, 1) that depend only on (seed, task id, class)."""
    task_hash = pd.util.hash_pandas_object(pd.Series(tasks), index=False).to_numpy(dtype=np.uint64)
    salt = np.uint64(derive_seed(seed, "aggregation", "ties"))
    cols = [pd.util.hash_array((task_hash ^ salt) + np.uint64(c)) for c in range(n_classes)]
    return (np.stack(cols, axis=1) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
