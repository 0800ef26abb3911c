"""Majority vote: each task gets the class most of its workers gave."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from fedkd.aggregation.base import Aggregator, EncodedChunk, StateDict
from fedkd.errors import ConfigError

TIE_BREAKS = ("random", "reliability")


class MajorityVote(Aggregator):
    """Majority vote with seeded tie-breaking.

    ``P(t | task i) = n_it / n_i``, the share of task i's labels that say t; the prediction is its
    argmax. It assumes nothing about workers, so it needs no history: each task is decided by its own
    votes, and online and offline give the same labels.

    Ties: with ``tie_break="random"`` (default) a tied task gets one of its tied classes drawn from a
    hash of (seed, task id, class), so the rule is reproducible and does not depend on chunking. With
    ``tie_break="reliability"`` the tied class whose voters have the higher summed *reliability* wins,
    reliability being a worker's agreement rate with the majority on earlier tasks,
    ``(agree + 1) / (labels + 2)`` (so 0.5 for a worker never seen); remaining ties are random as above.

    ``worker_confusions()`` is the row-normalised table of (majority label, worker label) counts with
    one pseudo-count per cell.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"task": [0, 0, 0, 1, 1, 1], "worker": ["a", "b", "c"] * 2, "label": [1, 1, 0, 2, 2, 2]})
        >>> MajorityVote(n_classes=3).fit_predict(df).tolist()
        [1, 2]
    """

    name = "mv"

    def __init__(self, n_classes: int, seed: int = 0, tie_break: str = "random") -> None:
        if tie_break not in TIE_BREAKS:
            raise ConfigError(f"unknown tie_break {tie_break!r}; choose one of {', '.join(TIE_BREAKS)}")
        self.tie_break = tie_break
        super().__init__(n_classes, seed)

    def _reset(self) -> None:
        super()._reset()
        self.counts_ = np.zeros((0, self.n_classes, self.n_classes))

    def _votes(self, enc: EncodedChunk) -> np.ndarray:
        C = self.n_classes
        return np.bincount(enc.task * C + enc.label, minlength=enc.n_tasks * C).reshape(enc.n_tasks, C).astype(float)

    def _proba(self, enc: EncodedChunk) -> np.ndarray:
        votes = self._votes(enc)
        return votes / votes.sum(axis=1, keepdims=True)

    def _tie_key(self, enc: EncodedChunk) -> np.ndarray | None:
        if self.tie_break == "random":
            return None
        C = self.n_classes
        counts = self.counts_
        reliability = np.full(enc.worker.shape, 0.5)
        seen = (enc.worker >= 0) & (enc.worker < len(counts))
        agree = np.trace(counts, axis1=1, axis2=2)[enc.worker[seen]]
        total = counts.sum(axis=(1, 2))[enc.worker[seen]]
        reliability[seen] = (agree + 1.0) / (total + 2.0)
        counts = np.bincount(enc.task * C + enc.label, weights=reliability, minlength=enc.n_tasks * C)
        return counts.reshape(enc.n_tasks, C)

    def _update(self, enc: EncodedChunk) -> None:
        C = self.n_classes
        grown = np.zeros((self.n_workers, C, C))
        grown[: len(self.counts_)] = self.counts_
        majority = self._decide(enc, self._proba(enc))
        np.add.at(grown, (enc.worker, majority[enc.task], enc.label), 1.0)
        self.counts_ = grown

    def worker_confusions(self) -> dict[Hashable, np.ndarray]:
        smoothed = self.counts_ + 1.0
        matrices = smoothed / smoothed.sum(axis=2, keepdims=True)
        return dict(zip(self.workers_, matrices, strict=False))

    def _state_arrays(self) -> StateDict:
        return {"tie_break": self.tie_break, "counts": self.counts_.copy()}

    def _load_arrays(self, state: StateDict) -> None:
        self.tie_break = str(state["tie_break"])
        self.counts_ = np.asarray(state["counts"], dtype=np.float64).reshape(-1, self.n_classes, self.n_classes).copy()
