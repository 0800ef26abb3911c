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

SHRINK_TARGETS = ("pooled", "one_coin", "worker")
SHRINK_RULES = ("fixed", "moments", "agreement")
# The least prior strength (pseudo-labels per confusion row) that shrink_rule="moments" or "agreement" estimates.
MOMENT_FLOOR = 0.5


@dataclass(frozen=True)
class BILAConfig:
    """Hyper-parameters of :class:`BILA`. ``shrinkage``, ``shrink_to``, ``shrink_rule``, ``epochs``, ``m_step``
    and ``tol`` were chosen by leave-one-set-out over the 8 bundled real sets and 7 synthetic regimes
    (``benchmarks/bila_defaults.py``, ``benchmarks/results/bila_defaults.md``); the rest on the real sets.

    ``hidden``: width of the classifier's MLP branch. ``beta``: weight of the KL to the class prior
    (1 is the exact ELBO; 0.1 made the posteriors over-confident and cost 1-5 points on product and
    web). ``epochs``: most full-batch steps on a chunk; ``tol``: stop earlier once no posterior of the
    chunk moved more than this in a step (20 steps with 0.002 beat a fixed 7 by 0.2 points on both the real
    sets and the regimes). ``warmup_epochs``: steps on the first chunk that fit the classifier to
    majority-vote shares first. ``lr`` / ``max_step``: Adam's step size and the bound on each
    coordinate's move per step. ``alpha``: Dirichlet pseudo-count on every confusion cell.
    ``init_smoothing``: pseudo-counts per row, spread like the pooled confusion of the known workers,
    added to a new worker's majority-vote counts. ``memory``: keep the expected confusion counts of
    earlier chunks as the prior of later ones. ``log_prior``: add the log class prior to the prediction.

    ``shrinkage`` / ``shrink_to`` / ``shrink_rule``: the empirical-Bayes prior that lets BILA degrade
    gracefully with little evidence. Every worker's confusion gets a Dirichlet prior centred on the crowd's
    pooled confusion (``pooled``), its one-coin form (``one_coin``), or that pooled confusion re-centred on each
    worker's own accuracy (``worker``, see :meth:`BILA._worker_targets`), of ``shrinkage`` pseudo-labels per row
    (``fixed``) or of a strength estimated from the spread of the workers' accuracies with ``shrinkage`` as
    its ceiling: against majority-vote shares and BILA's posteriors (``moments``, see :meth:`BILA._strength`)
    or from how often the workers agree with each other (``agreement``, see
    :meth:`BILA._agreement_strength`). A worker with a handful of labels then counts
    like an average worker (BILA acts as a weighted vote); one with hundreds is judged on its own. Without
    it BILA fell 7 points below majority vote on the many-workers regime and 1.5 on one-coin crowds.
    ``moments`` measures accuracy against soft shares yet subtracts coin-flip noise, so it found no spread at
    all on most first chunks and on the many-workers and hard-first regimes throughout, and sat at its
    ceiling; ``agreement`` recovers the spread of simulated one-coin crowds to within 10-20 %. The
    per-worker centre with the ceiling of 50 the protocol chose with it gained 1.1 points on one-coin crowds, 3.4
    on ten_class_small and 1.1 on web over the previous default (the pooled centre, ceiling 10), which judged a
    worker known from tens of labels as the average worker in every row it had few labels in; it lost 1.1 on
    dog, 0.9 on imbalanced and 0.6 on bluebird (``benchmarks/results/crowd_aggregation.md``).
    ``m_step``: set the chunk's confusions in closed form from the posteriors at every step instead of by
    Adam: the variational-Bayes expectation of the log confusions under their Dirichlet posterior, which
    weighs a worker known from a few labels less (with the log of the posterior mean instead it was measured
    not better than Adam: -0.2 points; with the expectation it is worth 3.4 points on ten_class_small).
    """

    hidden: int = 32
    beta: float = 1.0
    epochs: int = 20
    warmup_epochs: int = 30
    lr: float = 0.05
    max_step: float = 0.1
    alpha: float = 0.3
    init_smoothing: float = 1.0
    memory: bool = True
    log_prior: bool = True
    shrinkage: float = 50.0
    shrink_to: str = "worker"
    shrink_rule: str = "agreement"
    m_step: bool = True
    tol: float = 0.002


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
      pseudo-counts per row spread like the pooled confusion of the workers known by then, plus the
      shrinkage prior ``s * P`` below.

    On each chunk both are trained jointly by minimising the negative ELBO

        L = sum_i [ -sum_t q(t|x_i) sum_{k labelled i} log pi_k[t, x_ik] + beta KL(q(.|x_i) || prior) ]
            - sum_k sum_{t,l} (alpha + s P[t, l] + M_k[t, l]) log pi_k[t, l]

    where ``M_k`` are the expected confusion counts ``sum_i q(t|x_i) [x_ik = l]`` kept from earlier
    chunks (streaming variational Bayes: the posterior after chunk t is the prior of chunk t+1, so old
    chunks are summarised, never revisited; ``memory=False`` drops the term), ``P`` is the crowd's pooled
    confusion (row-stochastic: the expected counts of all workers so far plus this chunk's majority-vote
    counts; with ``shrink_to="worker"`` each worker's own ``P_k``, that confusion moved to the worker's
    shrunk accuracy) and ``s`` the shrinkage strength in pseudo-labels per row (hierarchical / empirical Bayes:
    a worker's matrix is pulled towards the average worker's until its own counts outweigh ``s``), and
    ``prior`` is the class frequencies of the chunk: the sum of its posteriors q (majority-vote shares
    before the first step), re-estimated at every step, plus the kept class counts of earlier chunks and
    one pseudo-count per class. (A prior from the current chunk alone swung from chunk to chunk and cost
    3-5 points on web.)
    The optimiser is Adam with each coordinate's move clipped to ``max_step`` per step, up to ``epochs``
    full-batch steps per chunk (fewer once the posteriors stop moving, ``tol``), and on the first chunk a
    warm-up of ``warmup_epochs`` steps that fits the classifier to majority-vote shares before the joint
    steps. Only the parameters of the chunk's workers are gathered and stepped, so a chunk costs time in
    its own size, not in the number of workers or chunks seen.

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
        if self.config.shrink_to not in SHRINK_TARGETS:
            raise ConfigError(f"unknown BILA shrink_to {self.config.shrink_to!r}; "
                              f"choose one of {', '.join(SHRINK_TARGETS)}")
        if self.config.shrink_rule not in SHRINK_RULES:
            raise ConfigError(f"unknown BILA shrink_rule {self.config.shrink_rule!r}; "
                              f"choose one of {', '.join(SHRINK_RULES)}")
        if self.config.shrinkage < 0 or self.config.tol < 0:
            raise ConfigError(f"BILA shrinkage and tol must be >= 0, got {self.config.shrinkage} and {self.config.tol}")
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
        self.pooled_memory_ = torch.zeros(C, C)
        self.agreement_ = torch.zeros(0, 2)
        self.agreement_noise_ = torch.zeros(3)

    # --- the model ------------------------------------------------------------------------------

    def _classifier_logits(self, linear: torch.Tensor, embed: torch.Tensor, task: torch.Tensor,
                           pair: torch.Tensor, n_tasks: int) -> torch.Tensor:
        summed_linear = torch.zeros(n_tasks, self.n_classes).index_add(0, task, linear[pair])
        summed = torch.zeros(n_tasks, self.config.hidden).index_add(0, task, embed[pair])
        return summed_linear + torch.relu(summed + self.hidden_bias_) @ self.out_weight_ + self.out_bias_

    def _shrink_target(self, enc: EncodedChunk, shares: np.ndarray) -> torch.Tensor:
        """The confusion every worker is shrunk towards: the label-weighted pooled confusion of all chunks so
        far (expected counts) plus this chunk's majority-vote counts, or its one-coin form (the pooled
        accuracy on the diagonal, the rest spread evenly) with ``shrink_to="one_coin"``."""
        C = self.n_classes
        chunk = np.stack([np.bincount(enc.label, weights=shares[enc.task, t], minlength=C) for t in range(C)])
        counts = self.pooled_memory_.double().numpy() + chunk + 1.0
        if self.config.shrink_to == "one_coin":
            accuracy = np.trace(counts) / counts.sum()
            counts = np.full((C, C), (1.0 - accuracy) / (C - 1)) + (accuracy - (1.0 - accuracy) / (C - 1)) * np.eye(C)
        return torch.from_numpy(counts / counts.sum(axis=1, keepdims=True)).float()

    def _worker_counts(self, enc: EncodedChunk, shares: np.ndarray) -> np.ndarray:
        """Expected confusion counts of the chunk's workers (in code order): this chunk's against its
        majority-vote shares plus those kept from earlier chunks."""
        touched, local = np.unique(enc.worker, return_inverse=True)
        counts = expected_counts(EncodedChunk(enc.tasks, enc.task, local, enc.label), shares, len(touched))
        kept = touched < len(self.memory_)
        counts[kept] += self.memory_[torch.from_numpy(touched[kept])].double().numpy()
        return counts

    def _worker_targets(self, enc: EncodedChunk, shares: np.ndarray, pooled: torch.Tensor,
                        strength: float) -> torch.Tensor:
        """``shrink_to="worker"``: one centre per worker of the chunk, the pooled confusion with every row's
        accuracy moved by how much this worker's accuracy differs from the crowd's. That accuracy is itself
        shrunk to the crowd's by ``strength`` pseudo-labels (the beta-binomial prior the strength rules
        estimate), so the model has three levels: a worker with a handful of labels is the average worker (a
        vote), one with tens of labels is judged by one accuracy (as one-coin Dawid-Skene judges everyone), and
        only rows that hold many labels of their own leave that form (Dawid-Skene)."""
        counts = self._worker_counts(enc, shares)
        P = pooled.double().numpy()
        crowd = float(np.trace(self.pooled_memory_.double().numpy() + counts.sum(axis=0)) /
                      max(float(self.pooled_memory_.sum()) + counts.sum(), 1e-12))
        own = (np.trace(counts, axis1=1, axis2=2) + strength * crowd) / (counts.sum(axis=(1, 2)) + strength)
        diag = np.clip(np.diag(P)[None, :] + (own - crowd)[:, None], 1e-3, 1 - 1e-3)
        off = P[None] * ((1 - diag) / (1 - np.diag(P))[None, :])[:, :, None]
        eye = np.eye(self.n_classes, dtype=bool)
        centred = np.where(eye[None], diag[:, :, None] * eye[None], off)
        return torch.from_numpy(centred).float()

    def _strength(self, enc: EncodedChunk, shares: np.ndarray) -> float:
        """Pseudo-labels per confusion row of the shrinkage prior: ``shrinkage`` itself, or with
        ``shrink_rule="moments"`` the empirical-Bayes (method-of-moments, beta-binomial) estimate from how
        much the accuracies of the chunk's workers spread beyond what their label counts explain:
        ``a(1-a)/tau^2 - 1`` pseudo-labels in all, ``tau^2`` the between-worker variance of the accuracy
        (against kept counts plus this chunk's majority-vote shares), ``a`` the pooled accuracy; spread
        over the rows, at least ``MOMENT_FLOOR`` and at most ``shrinkage``. Homogeneous crowds are shrunk
        hard (towards a weighted vote), crowds of experts and spammers lightly."""
        cfg, C = self.config, self.n_classes
        if cfg.shrink_rule == "fixed":
            return cfg.shrinkage
        if cfg.shrink_rule == "agreement":
            return self._agreement_strength(enc)
        counts = self._worker_counts(enc, shares)
        n = counts.sum(axis=(1, 2))
        right = np.trace(counts, axis1=1, axis2=2)
        a = right.sum() / n.sum()
        excess = (right / n - a) ** 2 - a * (1 - a) / n
        tau2 = max(float((n * excess).sum() / n.sum()), 1e-6)
        return float(np.clip((a * (1 - a) / tau2 - 1) / C, MOMENT_FLOOR, max(cfg.shrinkage, MOMENT_FLOOR)))

    def _agreement_strength(self, enc: EncodedChunk) -> float:
        """The strength from how often workers agree with each other, which needs no reference label.

        Under a one-coin crowd, a label of worker k agrees with another worker's label on the same task with
        probability ``1/C + (C-1)/C s_k s_j`` (``s = (C p - 1)/(C - 1)`` the skill, ``p`` the accuracy), so the
        share of co-workers that agree with k averages ``m = 1/C + (C-1)/C E[s]^2`` over the crowd, and its
        between-worker variance (beyond the noise of each worker's label count) is ``tau^2 = ((C-1)/C)^2
        E[s]^2 var(s)``. Hence ``var(p) = tau^2 (C-1)/(C m - 1)`` and ``p = 1/C + (C-1)/C E[s]``, and the
        beta-binomial strength ``p(1-p)/var(p) - 1`` follows. Under the same one-coin model every row of a
        worker's confusion has accuracy p, so this is the strength of each row (not of all rows together as
        in ``moments``), clipped to [``MOMENT_FLOOR``, ``shrinkage``]; the ceiling when fewer than two
        workers have a co-worker yet or the crowd agrees no more often than chance (then no worker can be told
        from another by agreement, and all are pooled). Unlike ``moments`` (accuracies against majority-vote
        shares and BILA's own posteriors), it does not shrink the spread when the reference is poor, and does
        not feed back on itself: strong shrinkage makes the posteriors a vote, the vote hides the spread, and
        the spread estimate would keep the shrinkage strong. Per-worker sums of the shares and their count are kept
        (``agreement_``), and the pooled sums that give the noise of one share (``agreement_noise_``)."""
        cfg, C = self.config, self.n_classes
        top = max(cfg.shrinkage, MOMENT_FLOOR)
        touched, sums, r = self._chunk_agreement(enc)
        kept = touched < len(self.agreement_)
        sums[kept] += self.agreement_[torch.from_numpy(touched[kept])].double().numpy()
        total, squares, count = self.agreement_noise_.double().numpy() + (r.sum(), (r ** 2).sum(), r.size)
        n = sums[:, 1]
        if count == 0 or (n > 0).sum() < 2:
            return top
        noise = squares / count - (total / count) ** 2
        m = sums[:, 0].sum() / n.sum()
        seen = n > 0
        excess = (sums[seen, 0] / n[seen] - m) ** 2 - noise / n[seen]
        tau2 = max(float((n[seen] * excess).sum() / n.sum()), 1e-6)
        if C * m - 1 <= 0:
            return top
        skill = np.sqrt((m - 1 / C) * C / (C - 1))
        p = min(1 / C + (C - 1) / C * skill, 1 - 1e-6)
        var_p = tau2 * (C - 1) / (C * m - 1)
        return float(np.clip(p * (1 - p) / var_p - 1, MOMENT_FLOOR, top))

    def _chunk_agreement(self, enc: EncodedChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The chunk's workers (codes), per worker the sum of its labels' co-worker agreement shares and the
        number of its labels on tasks with another label, and those shares (one per such label)."""
        C = self.n_classes
        touched, local = np.unique(enc.worker, return_inverse=True)
        others = np.bincount(enc.task, minlength=enc.n_tasks)[enc.task] - 1
        votes = np.bincount(enc.task * C + enc.label, minlength=enc.n_tasks * C)[enc.task * C + enc.label] - 1
        paired = others > 0
        r = votes[paired] / others[paired]
        sums = np.stack([np.bincount(local[paired], weights=r, minlength=len(touched)),
                         np.bincount(local[paired], minlength=len(touched)).astype(np.float64)], axis=1)
        return touched, sums, r

    def _grow(self, enc: EncodedChunk, target: torch.Tensor, strength: float) -> None:
        """Give workers first seen in this chunk a confusion matrix (majority-vote counts plus the prior) and
        embeddings."""
        cfg, old, K, C = self.config, self.conf_logits_.shape[0], self.n_workers, self.n_classes
        if K == old:
            return
        pooled = np.exp(self._log_conf()[-1])
        if target.dim() == 3:
            target = target[torch.from_numpy(np.unique(enc.worker) >= old)]
        counts = (expected_counts(enc, vote_shares(enc, C), K, first=old) + cfg.init_smoothing * C * pooled
                  + strength * target.double().numpy())
        new_logits = torch.from_numpy(np.log(counts / counts.sum(axis=2, keepdims=True))).float()
        gen = torch_generator(self.seed, "bila", "embed", old)
        new_embed = torch.randn((K - old) * C, cfg.hidden, generator=gen) * 0.1
        self.conf_logits_ = torch.cat([self.conf_logits_, new_logits])
        new_linear = torch.log_softmax(new_logits, dim=2).transpose(1, 2).reshape(-1, C)
        self.linear_ = torch.cat([self.linear_, new_linear])
        self.memory_ = torch.cat([self.memory_, torch.zeros(K - old, C, C)])
        self.agreement_ = torch.cat([self.agreement_, torch.zeros(K - old, 2)])
        self.embed_ = torch.cat([self.embed_, new_embed])

    def _update(self, enc: EncodedChunk) -> None:
        """Fit the chunk, touching only its workers' confusions and the embeddings of the (worker, label) pairs
        it contains: time flat in the chunks and workers seen."""
        cfg, C = self.config, self.n_classes
        shares_np = vote_shares(enc, C)
        target = self._shrink_target(enc, shares_np)
        strength = self._strength(enc, shares_np)
        touched, local = np.unique(enc.worker, return_inverse=True)
        if cfg.shrink_to == "worker":
            target = self._worker_targets(enc, shares_np, target, strength)
        self._grow(enc, target, strength)
        used, pair = np.unique(enc.worker * C + enc.label, return_inverse=True)
        rows, pair = torch.from_numpy(used), torch.from_numpy(pair.astype(np.int64))
        touched_t = torch.from_numpy(touched)
        task = torch.from_numpy(enc.task.copy())
        worker = torch.from_numpy(local.astype(np.int64))
        label = torch.from_numpy(enc.label.copy())
        local_enc = EncodedChunk(enc.tasks, enc.task, local.astype(np.int64), enc.label)
        prior_counts = cfg.alpha + strength * target + self.memory_[touched_t]
        conf = self.conf_logits_[touched_t].clone()
        linear, embed = self.linear_[rows].clone(), self.embed_[rows].clone()
        shared = [self.hidden_bias_, self.out_weight_, self.out_bias_]
        params = [linear, embed, *shared] + ([] if cfg.m_step else [conf])
        for p in params:
            p.requires_grad_(True)
        optimizer = BoundedAdam(params, lr=cfg.lr, max_step=cfg.max_step)
        shares = torch.from_numpy(shares_np).float()
        if self.n_chunks_seen_ == 0:
            for _ in range(cfg.warmup_epochs):
                logits = self._classifier_logits(linear, embed, task, pair, enc.n_tasks)
                optimizer.step(F.cross_entropy(logits, shares))
        q = shares
        for _ in range(cfg.epochs):
            if cfg.m_step:
                conf = _vb_confusions(prior_counts, local_enc, q.detach(), len(touched))
            log_prior = _log_frequencies(q.detach(), self.class_memory_)
            loss, new_q = self._neg_elbo(linear, embed, conf, task, worker, label, pair, enc.n_tasks, log_prior,
                                         prior_counts)
            optimizer.step(loss)
            change = (new_q.detach() - q).abs().max().item()
            q = new_q.detach()
            if change < cfg.tol:
                break
        for p in params:
            p.requires_grad_(False)
        with torch.no_grad():
            q = torch.softmax(self._classifier_logits(linear, embed, task, pair, enc.n_tasks), dim=1)
        if cfg.m_step:
            conf = _vb_confusions(prior_counts, local_enc, q, len(touched))
        self.conf_logits_[touched_t] = conf.detach()
        self.linear_[rows] = linear.detach()
        self.embed_[rows] = embed.detach()
        self.log_prior_ = _log_frequencies(q, self.class_memory_)
        self.class_memory_ = self.class_memory_ + q.sum(dim=0)
        counts = torch.from_numpy(expected_counts(local_enc, q.double().numpy(), len(touched))).float()
        self.pooled_memory_ = self.pooled_memory_ + counts.sum(dim=0)
        if cfg.memory:
            self.memory_[touched_t] += counts
        _, sums, r = self._chunk_agreement(enc)
        self.agreement_[touched_t] += torch.from_numpy(sums).float()
        self.agreement_noise_ += torch.tensor([r.sum(), (r ** 2).sum(), r.size], dtype=torch.float32)

    def _neg_elbo(self, linear: torch.Tensor, embed: torch.Tensor, conf: torch.Tensor, task: torch.Tensor,
                  worker: torch.Tensor, label: torch.Tensor, pair: torch.Tensor, n_tasks: int,
                  log_prior: torch.Tensor, prior_counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of the class docstring over the chunk's label rows, and the classifier's posteriors q."""
        cfg = self.config
        log_q = torch.log_softmax(self._classifier_logits(linear, embed, task, pair, n_tasks), dim=1)
        q = log_q.exp()
        log_conf = conf - conf.logsumexp(dim=2, keepdim=True)
        data = -(q[task] * log_conf[worker, :, label]).sum()
        kl = (q * (log_q - log_prior)).sum()
        conf_prior = -(prior_counts * log_conf).sum()
        return (data + cfg.beta * kl + conf_prior) / len(task), q

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
                 "memory_", "class_memory_", "pooled_memory_", "log_prior_", "agreement_",
                 "agreement_noise_"]
        return {name: getattr(self, name) for name in names}


def _log_frequencies(q: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
    """log class frequencies: a chunk's posteriors plus the class counts of earlier chunks, plus one per class."""
    freq = q.sum(dim=0) + earlier + 1.0
    return torch.log(freq / freq.sum())


def _vb_confusions(prior_counts: torch.Tensor, enc: EncodedChunk, q: torch.Tensor, n_workers: int) -> torch.Tensor:
    """The conjugate update of streaming variational Bayes given q: each confusion row's Dirichlet posterior has
    the prior counts plus the chunk's expected counts, and the labels are scored by its expected log,
    ``digamma(n[t, l]) - digamma(sum_l n[t, l])``, not by the log of its mean. The two agree where a row holds
    many labels; where it holds few, the expectation marks a label the worker has rarely given for that class
    as much less likely, so a worker known from a handful of labels counts for less."""
    counts = prior_counts + torch.from_numpy(expected_counts(enc, q.double().numpy(), n_workers)).float()
    return torch.digamma(counts) - torch.digamma(counts.sum(dim=2, keepdim=True))


class BoundedAdam:
    """Adam (Kingma & Ba, 2015; torch's defaults and update formula) whose per-coordinate move is clipped
    to ``max_step`` per step: a bounded adaptive step. Written out because ``torch.optim`` imports
    ``torch._dynamo`` on first use, about 4 s of start-up that would dominate a short online run."""

    def __init__(self, params: list[torch.Tensor], lr: float, max_step: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.max_step, self.betas, self.eps = params, lr, max_step, betas, eps
        self.first = [torch.zeros_like(p) for p in params]
        self.second = [torch.zeros_like(p) for p in params]
        self.steps = 0

    def step(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` and move every parameter by one bounded Adam step."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        self.steps += 1
        b1, b2 = self.betas
        correction1, correction2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
        with torch.no_grad():
            for p, g, m, v in zip(self.params, grads, self.first, self.second, strict=True):
                if g is None:
                    continue
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                move = (self.lr / correction1) * m / (v.sqrt() / correction2 ** 0.5 + self.eps)
                p.sub_(move.clamp(-self.max_step, self.max_step))
