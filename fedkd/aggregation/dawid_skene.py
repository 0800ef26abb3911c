"""Dawid-Skene: expectation-maximisation over per-worker confusion matrices, offline and streaming."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from fedkd.aggregation.base import Aggregator, EncodedChunk, StateDict


def expected_counts(enc: EncodedChunk, posterior: np.ndarray, n_workers: int, first: int = 0) -> np.ndarray:
    """Soft confusion counts ``N[k, t, l] = sum_{rows (i, k, l)} posterior[i, t]`` of workers ``first..n_workers-1``,
    shape (n_workers - first, C, C)."""
    C = posterior.shape[1]
    rows = enc.worker >= first
    idx = (enc.worker[rows] - first) * C + enc.label[rows]
    size = (n_workers - first) * C
    per_class = [np.bincount(idx, weights=posterior[enc.task[rows], t], minlength=size) for t in range(C)]
    return np.stack(per_class, axis=0).reshape(C, n_workers - first, C).transpose(1, 0, 2)


def posterior_from_confusions(enc: EncodedChunk, log_conf: np.ndarray, log_prior: np.ndarray | None) -> np.ndarray:
    """Naive-Bayes posterior ``q(t | i) ∝ prior(t) * prod_{rows (i, k, l)} pi_k[t, l]`` for each task.

    ``log_conf`` is (K, C, C); rows of unseen workers (code -1) use its last entry, so callers append
    the matrix to use for them (or an all-zero one to ignore them)."""
    C = log_conf.shape[1]
    worker = np.where(enc.worker >= 0, enc.worker, log_conf.shape[0] - 1)
    terms = log_conf[worker, :, enc.label]
    logits = np.stack([np.bincount(enc.task, weights=terms[:, t], minlength=enc.n_tasks) for t in range(C)], axis=1)
    if log_prior is not None:
        logits = logits + log_prior
    return softmax(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def vote_shares(enc: EncodedChunk, n_classes: int) -> np.ndarray:
    """Majority-vote posterior (each task's label shares), the usual EM starting point."""
    votes = np.bincount(enc.task * n_classes + enc.label, minlength=enc.n_tasks * n_classes)
    votes = votes.reshape(enc.n_tasks, n_classes).astype(np.float64)
    return votes / votes.sum(axis=1, keepdims=True)


class DawidSkene(Aggregator):
    """Dawid & Skene (1979): each worker k has a confusion matrix ``pi_k[t, l] = P(label l | true t)``;
    labels are independent given the true class, whose prior is ``p``.

    EM, vectorised over all rows:

    - E-step: ``q(t | i) ∝ p_t * prod_{(i, k, l)} pi_k[t, l]``
    - M-step: ``pi_k[t, l] ∝ alpha + sum_{(i, k, l)} q(t | i)`` and ``p_t ∝ alpha + sum_i q(t | i)``

    started from majority-vote shares, until the posteriors change by less than ``tol`` or after
    ``max_iter`` rounds. ``alpha`` (a symmetric Dirichlet pseudo-count) keeps rare workers' matrices
    away from 0 and 1.

    ``fit(df)`` is the offline algorithm over all labels. ``partial_fit(chunk)`` is the streaming
    variant (incremental EM): the sufficient statistics ``N[k, t, l]`` and class counts of earlier
    chunks are kept, and EM runs on the new chunk only with ``pi`` estimated from the kept counts plus
    the chunk's own expected counts; at the end the chunk's counts are added. Memory grows with the
    number of workers, time with the chunk, never with the number of chunks seen. Workers never seen
    are given the pooled confusion of all workers when predicting.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"task": [0, 0, 0, 1, 1, 1], "worker": ["a", "b", "c"] * 2, "label": [1, 1, 0, 0, 0, 0]})
        >>> DawidSkene(n_classes=2).fit_predict(df).tolist()
        [1, 0]
    """

    name = "ds"

    def __init__(self, n_classes: int, seed: int = 0, max_iter: int = 100, tol: float = 1e-5,
                 alpha: float = 0.01, chunk_iter: int = 20) -> None:
        self.max_iter, self.tol, self.alpha, self.chunk_iter = int(max_iter), float(tol), float(alpha), int(chunk_iter)
        super().__init__(n_classes, seed)

    def _reset(self) -> None:
        super()._reset()
        self.counts_ = np.zeros((0, self.n_classes, self.n_classes))
        self.class_counts_ = np.zeros(self.n_classes)

    def fit(self, df) -> DawidSkene:
        """Offline EM over all of ``df`` until convergence."""
        self._reset()
        self._run_em(self._encode(df, grow=True), self.max_iter)
        self.n_chunks_seen_ = 1
        return self

    def _update(self, enc: EncodedChunk) -> None:
        self._run_em(enc, self.chunk_iter)

    def _run_em(self, enc: EncodedChunk, n_iter: int) -> None:
        kept = np.zeros((self.n_workers, self.n_classes, self.n_classes))
        kept[: len(self.counts_)] = self.counts_
        posterior = vote_shares(enc, self.n_classes)
        for _ in range(n_iter):
            counts = kept + expected_counts(enc, posterior, self.n_workers)
            classes = self.class_counts_ + posterior.sum(axis=0)
            new = posterior_from_confusions(enc, self._log_conf(counts), self._log_prior(classes))
            converged = np.abs(new - posterior).max() < self.tol
            posterior = new
            if converged:
                break
        self.counts_ = kept + expected_counts(enc, posterior, self.n_workers)
        self.class_counts_ = self.class_counts_ + posterior.sum(axis=0)

    def _log_conf(self, counts: np.ndarray) -> np.ndarray:
        """log pi for every worker plus, last, the pooled matrix used for unseen workers."""
        pooled = counts.sum(axis=0, keepdims=True)
        smoothed = np.concatenate([counts, pooled], axis=0) + self.alpha
        return np.log(smoothed / smoothed.sum(axis=2, keepdims=True))

    def _log_prior(self, class_counts: np.ndarray) -> np.ndarray:
        smoothed = class_counts + self.alpha
        return np.log(smoothed / smoothed.sum())

    def _proba(self, enc: EncodedChunk) -> np.ndarray:
        return posterior_from_confusions(enc, self._log_conf(self.counts_), self._log_prior(self.class_counts_))

    def worker_confusions(self) -> dict[Hashable, np.ndarray]:
        return dict(zip(self.workers_, np.exp(self._log_conf(self.counts_)[:-1]), strict=False))

    def _state_arrays(self) -> StateDict:
        return {"counts": self.counts_.copy(), "class_counts": self.class_counts_.copy(), "alpha": self.alpha,
                "max_iter": self.max_iter, "tol": self.tol, "chunk_iter": self.chunk_iter}

    def _load_arrays(self, state: StateDict) -> None:
        C = self.n_classes
        self.counts_ = np.asarray(state["counts"], dtype=np.float64).reshape(-1, C, C).copy()
        self.class_counts_ = np.asarray(state["class_counts"], dtype=np.float64).copy()
        self.alpha, self.tol = float(state["alpha"]), float(state["tol"])
        self.max_iter, self.chunk_iter = int(state["max_iter"]), int(state["chunk_iter"])
