"""BILA: online variational label aggregation with an amortised classifier and per-worker confusions."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from fedkd.aggregation.base import Aggregator, EncodedChunk, StateDict
from fedkd.aggregation.dawid_skene import expected_counts, posterior_from_confusions, vote_shares
from fedkd.errors import ConfigError
from fedkd.seeding import torch_generator


@dataclass(frozen=True)
class BILAConfig:
    """Hyper-parameters of :class:`BILA`, defaults chosen on the bundled real sets (see the benchmark).

    ``hidden``: width of the classifier's MLP branch. ``beta``: weight of the KL to the class prior
    (1 is the exact ELBO; 0.1 made the posteriors over-confident and cost 1-5 points on product and
    web). ``epochs``: full-batch steps on every chunk; few steps act as damping, and more overfit each
    chunk (web lost 5 points at 50). ``warmup_epochs``: steps on the first chunk that fit the classifier
    to majority-vote shares first. ``lr`` / ``max_step``: Adam's step size and the bound on each
    coordinate's move per step. ``alpha``: Dirichlet pseudo-count on every confusion cell.
    ``init_smoothing``: pseudo-counts per row, spread like the pooled confusion of the known workers,
    added to a new worker's majority-vote counts. ``memory``: keep the expected confusion counts of
    earlier chunks as the prior of later ones. ``log_prior``: add the log class prior to the prediction.
    """

    hidden: int = 32
    beta: float = 1.0
    epochs: int = 7
    warmup_epochs: int = 30
    lr: float = 0.05
    max_step: float = 0.1
    alpha: float = 0.3
    init_smoothing: float = 1.0
    memory: bool = True
    log_prior: bool = True


class BILA(Aggregator):
    """Online variational label aggregation (BILA).

    Each task i has a worker-label vector x_i (the label of each worker, missing for most). The model:

    - a classifier over the one-hot worker-label vector,
      ``q(t | x_i) = softmax(sum_{k labelled i} A[k, x_ik] + V relu(b + sum_{k labelled i} E[k, x_ik]) + c)``:
      an MLP (embeddings E summed, one hidden layer) plus a linear skip branch A that starts as
      ``A[k, l, t] = log pi_k[t, l]``, so q starts as the naive-Bayes posterior of the initial confusions
      and the MLP (output weights V starting at 0) learns corrections;
    - one confusion matrix per worker, ``pi_k = row-softmax(W_k)``, initialised from the counts of
      (majority vote, worker label) in the chunk where worker k first appears, plus ``init_smoothing``
      pseudo-counts per row spread like the pooled confusion of the workers known by then.

    On each chunk both are trained jointly by minimising the negative ELBO

        L = sum_i [ -sum_t q(t|x_i) sum_{k labelled i} log pi_k[t, x_ik] + beta KL(q(.|x_i) || prior) ]
            - sum_k sum_{t,l} (alpha + M_k[t, l]) log pi_k[t, l]

    where ``M_k`` are the expected confusion counts ``sum_i q(t|x_i) [x_ik = l]`` kept from earlier
    chunks (streaming variational Bayes: the posterior after chunk t is the prior of chunk t+1, so old
    chunks are summarised, never revisited; ``memory=False`` drops the term), and ``prior`` is the class
    frequencies of the chunk: the sum of its posteriors q (majority-vote shares before the first step),
    re-estimated at every step, plus the kept class counts of earlier chunks and one pseudo-count per
    class. (A prior from the current chunk alone swung from chunk to chunk and cost 3-5 points on web.)
    The optimiser is Adam with each coordinate's move clipped to ``max_step`` per step, ``epochs``
    full-batch steps per chunk, and on the first chunk a warm-up of ``warmup_epochs`` steps that fits
    the classifier to majority-vote shares before the joint steps.

    Prediction for a chunk: ``argmax_t [log prior(t)] + sum_k log pi_k[t, x_ik]``, the bracketed term
    with ``log_prior=True`` (the default: on imbalanced sets such as product it is worth 5 points).
    Workers first seen in a later chunk get a new confusion matrix and new embeddings; workers never
    seen get the pooled confusion when predicting. Memory grows with the number of workers, time with
    the chunk size, and neither with the number of chunks seen. ``fit`` is one big chunk.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"task": [0, 0, 0, 1, 1, 1], "worker": ["a", "b", "c"] * 2, "label": [1, 1, 0, 0, 0, 0]})
        >>> BILA(n_classes=2, seed=0).fit_predict(df).tolist()
        [1, 0]
    """

    name = "bila"

    def __init__(self, n_classes: int, seed: int = 0, config: BILAConfig | None = None, **overrides) -> None:
        base = config or BILAConfig()
        unknown = set(overrides) - {f.name for f in fields(BILAConfig)}
        if unknown:
            allowed = ", ".join(f.name for f in fields(BILAConfig))
            raise ConfigError(f"unknown BILA option(s) {', '.join(sorted(unknown))}; allowed: {allowed}")
        self.config = BILAConfig(**{**asdict(base), **overrides})
        super().__init__(n_classes, seed)

    def _reset(self) -> None:
        super()._reset()
        C, H = self.n_classes, self.config.hidden
        self.conf_logits_ = torch.zeros(0, C, C)
        self.memory_ = torch.zeros(0, C, C)
        self.linear_ = torch.zeros(0, C)
        self.embed_ = torch.zeros(0, H)
        self.hidden_bias_ = torch.zeros(H)
        self.out_weight_ = torch.zeros(H, C)
        self.out_bias_ = torch.zeros(C)
        self.log_prior_ = torch.full((C,), -float(np.log(C)))
        self.class_memory_ = torch.zeros(C)

    # --- the model ------------------------------------------------------------------------------

    def _params(self) -> list[torch.Tensor]:
        return [self.conf_logits_, self.linear_, self.embed_, self.hidden_bias_, self.out_weight_, self.out_bias_]

    def _classifier_logits(self, task: torch.Tensor, pair: torch.Tensor, n_tasks: int) -> torch.Tensor:
        linear = torch.zeros(n_tasks, self.n_classes).index_add(0, task, self.linear_[pair])
        summed = torch.zeros(n_tasks, self.config.hidden).index_add(0, task, self.embed_[pair])
        return linear + torch.relu(summed + self.hidden_bias_) @ self.out_weight_ + self.out_bias_

    def _grow(self, enc: EncodedChunk) -> None:
        """Give workers first seen in this chunk a confusion matrix (from majority-vote counts) and embeddings."""
        old, K, C = self.conf_logits_.shape[0], self.n_workers, self.n_classes
        if K == old:
            return
        pooled = np.exp(self._log_conf()[-1])
        counts = expected_counts(enc, vote_shares(enc, C), K)[old:] + self.config.init_smoothing * C * pooled
        new_logits = torch.from_numpy(np.log(counts / counts.sum(axis=2, keepdims=True))).float()
        gen = torch_generator(self.seed, "bila", "embed", old)
        new_embed = torch.randn((K - old) * C, self.config.hidden, generator=gen) * 0.1
        self.conf_logits_ = torch.cat([self.conf_logits_.detach(), new_logits])
        new_linear = torch.log_softmax(new_logits, dim=2).transpose(1, 2).reshape(-1, C)
        self.linear_ = torch.cat([self.linear_.detach(), new_linear])
        self.memory_ = torch.cat([self.memory_, torch.zeros(K - old, C, C)])
        self.embed_ = torch.cat([self.embed_.detach(), new_embed])

    def _update(self, enc: EncodedChunk) -> None:
        cfg, C = self.config, self.n_classes
        self._grow(enc)
        task = torch.from_numpy(enc.task.copy())
        worker = torch.from_numpy(enc.worker.copy())
        label = torch.from_numpy(enc.label.copy())
        pair = worker * C + label
        shares = torch.from_numpy(vote_shares(enc, C)).float()
        params = self._params()
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=cfg.lr)
        if self.n_chunks_seen_ == 0:
            for _ in range(cfg.warmup_epochs):
                self._step(optimizer, F.cross_entropy(self._classifier_logits(task, pair, enc.n_tasks), shares))
        touched = torch.unique(worker)
        q = shares
        for _ in range(cfg.epochs):
            log_prior = _log_frequencies(q.detach(), self.class_memory_)
            loss, q = self._neg_elbo(task, worker, label, pair, enc.n_tasks, log_prior, touched)
            self._step(optimizer, loss)
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad():
            q = torch.softmax(self._classifier_logits(task, pair, enc.n_tasks), dim=1)
        self.log_prior_ = _log_frequencies(q, self.class_memory_)
        self.class_memory_ = self.class_memory_ + q.sum(dim=0)
        if cfg.memory:
            self.memory_ += torch.from_numpy(expected_counts(enc, q.double().numpy(), self.n_workers)).float()

    def _neg_elbo(self, task: torch.Tensor, worker: torch.Tensor, label: torch.Tensor, pair: torch.Tensor,
                  n_tasks: int, log_prior: torch.Tensor, touched: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of the class docstring per label row, and the classifier's posteriors q."""
        cfg = self.config
        log_q = torch.log_softmax(self._classifier_logits(task, pair, n_tasks), dim=1)
        q = log_q.exp()
        log_conf = torch.log_softmax(self.conf_logits_, dim=2)
        row_terms = log_conf[worker, :, label]
        data = -(q[task] * row_terms).sum()
        kl = (q * (log_q - log_prior)).sum()
        prior_counts = cfg.alpha + self.memory_[touched]
        conf_prior = -(prior_counts * log_conf[touched]).sum()
        return (data + cfg.beta * kl + conf_prior) / len(task), q

    def _step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One Adam step whose per-coordinate move is clipped to ``max_step`` (a bounded adaptive step)."""
        before = [p.detach().clone() for p in optimizer.param_groups[0]["params"]]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for p, old in zip(optimizer.param_groups[0]["params"], before, strict=False):
                p.copy_(old + (p - old).clamp(-self.config.max_step, self.config.max_step))

    # --- prediction and state -------------------------------------------------------------------

    def _log_conf(self) -> np.ndarray:
        """log pi of every worker plus, last, the pooled mean confusion used for workers never seen."""
        conf = torch.softmax(self.conf_logits_.detach(), dim=2).double().numpy()
        C = self.n_classes
        pooled = conf.mean(axis=0, keepdims=True) if len(conf) else np.full((1, C, C), 1.0 / C)
        return np.log(np.concatenate([conf, pooled]))

    def _proba(self, enc: EncodedChunk) -> np.ndarray:
        log_prior = self.log_prior_.double().numpy() if self.config.log_prior else None
        return posterior_from_confusions(enc, self._log_conf(), log_prior)

    def worker_confusions(self) -> dict[Hashable, np.ndarray]:
        return dict(zip(self.workers_, np.exp(self._log_conf()[:-1]), strict=False))

    def _state_arrays(self) -> StateDict:
        arrays = {name: tensor.detach().numpy().copy() for name, tensor in self._tensors().items()}
        return {**arrays, **{f"config_{k}": v for k, v in asdict(self.config).items()}}

    def _load_arrays(self, state: StateDict) -> None:
        defaults = asdict(BILAConfig())
        self.config = BILAConfig(**{k: type(v)(state[f"config_{k}"]) for k, v in defaults.items()})
        for name in self._tensors():
            setattr(self, name, torch.from_numpy(np.array(state[name], dtype=np.float32)))

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The fitted tensors by attribute name: the model's parameters and the streaming statistics."""
        names = ["conf_logits_", "linear_", "embed_", "hidden_bias_", "out_weight_", "out_bias_",
                 "memory_", "class_memory_", "log_prior_"]
        return {name: getattr(self, name) for name in names}


def _log_frequencies(q: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
    """log class frequencies: a chunk's posteriors plus the class counts of earlier chunks, plus one per class."""
    freq = q.sum(dim=0) + earlier + 1.0
    return torch.log(freq / freq.sum())
