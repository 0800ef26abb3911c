"""The loop every black-box distiller shares: synthesize queries, ask the oracle, train the student.

A distillation run is a *pipeline* of three swappable parts: a ``QuerySynthesizer`` (TandemGAN, DFME,
random noise, real data, AEDM: the part that differs between methods), an ``Oracle`` (a local teacher, or a
federation behind messages) and the student. One iteration is

1. ``proposal = synthesizer.propose(student, B)``: the method's own query batch, if it asks one; once answered,
   ``synthesizer.learn(student, proposal, answers)`` takes the method's own update and returns the batch the
   student trains on (no query is wasted);
2. ``student_steps`` fresh batches ``x = synthesizer.sample(B)`` with their answers;
3. one student optimizer step per batch on ``mean_i disagreement(S(x_i), a_i)``.

**Waves.** An oracle call is a round trip to every client when the oracle is a federation, so the loop asks in
*waves*: the queries of several iterations are made first and asked in one call (``wave_size``), then each
iteration learns from its answers in order. What that changes is staleness: a proposal of the wave's k-th
iteration was made before the k - 1 updates that precede its ``learn``. ``wave_size`` below one iteration's cost
is the per-batch protocol: every batch its own call, made after the previous update.

**The answer store.** A synthesizer that sets ``store_training`` has every answered query kept in an
``AnswerStore``; ``replay`` draws from it for the online steps, and the *store stage* trains the student on all of
it (AEDM's offline phase: once the budget is spent; a federated strategy may also run it after every round).

**The answer histogram.** Every answer is counted by class (``fedkd.distill.histogram``); a run logs its entropy
and top-class share with each evaluation, and the loop warns once, through the ``fedkd`` logger, when the answers
collapse onto one class (the query source is then off the teacher's domain).

Every method runs under the same loop, student, optimizer and budget, so a benchmark compares query
synthesis and nothing else. An iteration starts only if its whole cost fits in the remaining budget,
so a run ends on a complete iteration, never on a ``QueryBudgetExceeded``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from fedkd.distill.histogram import CAUSES, AnswerHistogram, remedy_for
from fedkd.distill.losses import disagreement, log_class_prior
from fedkd.distill.state import flatten, unflatten
from fedkd.distill.store import AnswerStore, StoreTraining, draw, train_on_store
from fedkd.errors import ConfigError, FedkdError
from fedkd.oracle import Oracle
from fedkd.precision import autocast
from fedkd.seeding import torch_generator

AnsweredBatch = tuple[torch.Tensor, torch.Tensor]
STUDENT_OPTIMIZERS: tuple[str, ...] = ("rmsprop", "adam", "sgd")
SYNTHESIZER_VIEWS: tuple[str, ...] = ("raw", "adjusted")
log = logging.getLogger("fedkd")


@dataclass
class DistillConfig:
    """The shared loop's settings: the method, the oracle's answer mode and budget, and the student's training.

    ``student_steps`` fresh query batches follow each synthesizer step (DFME's ``n_S = 5``); 0 leaves the
    student to the batch the synthesizer returns (AEDM, whose batches must all reach its memory).
    ``eval_every`` and ``checkpoint_every`` are in queries. ``threads`` is torch's thread count for the
    run (0 keeps torch's default): these small networks run fastest on one thread, and five times
    slower on two threads of a busy 2-core machine.

    ``logit_adjustment`` (``tau``; 0 turns it off) corrects for the classes the teacher answers rarely: the
    student is trained on ``s + tau * log pi``, ``pi`` the histogram of the answers so far (``log_class_prior``;
    in proba mode, of their arg-max), so that its own logits ``s`` estimate the teacher's answer under balanced
    classes (logit adjustment, Menon et al., ICLR 2021; ``tau = 1`` is the value that makes the loss consistent
    for the balanced error, not a tuned one). A generator may find the inputs a teacher reads as some classes far
    more rarely than others, and a student trained on those answers alone then rarely predicts the rare classes on
    real digits. Probability answers need it for the same reason: they say how the teacher reads each query, not
    how often the queries are of each class, and a student that learns them on a skewed query stream still leans
    to the classes the stream holds most. The same algebra holds in both modes (the loss is minimised where
    ``softmax(s)`` is the teacher's answer divided by ``pi``, renormalised). Where the queries collapse onto one
    class (DFME's generator), proba mode pays for it: ``pi`` is then near zero for the other classes, and dividing
    the teacher's small probabilities on them by it makes the student over-predict them (README, the black-box
    table's proba column). The store stage applies the same correction.

    ``synthesizer_view`` is the student a synthesizer's objectives see: ``"raw"``, its own logits, or
    ``"adjusted"``, its logits as the loss sees them (plus ``tau * log pi``: its estimate of the teacher's answer on
    the query stream). With the adjustment on, the raw student is balanced, so a generator that balances the raw
    student's predictions over its batch (TandemGAN's marginal-entropy term) believes it draws the classes the
    teacher names rarely when the teacher does not name them; the adjusted view asks it for queries the teacher
    itself would answer evenly. The two are the same when ``logit_adjustment`` is 0. Measured with TandemGAN on
    ResNet-8 teachers (README, "AEDM across teachers"), it did not beat the raw view, which stays the default.
    """

    method: Literal["tandemgan", "dfme", "random", "real", "aedm"] = "tandemgan"
    mode: Literal["label", "proba"] = "label"
    budget: int = 1_000_000
    batch_size: int = 256
    student_steps: int = 5
    student_model: str = "lenet5"
    student_optimizer: Literal["rmsprop", "adam", "sgd"] = "adam"
    student_lr: float = 1e-3
    eval_every: int = 10_000
    checkpoint_every: int = 250_000
    threads: int = 1
    logit_adjustment: float = 0.0
    synthesizer_view: Literal["raw", "adjusted"] = "raw"

    def validate(self) -> None:
        for name in ("budget", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"distill.{name} must be >= 1, got {getattr(self, name)}")
        if self.student_steps < 0:
            raise ConfigError(f"distill.student_steps must be >= 0, got {self.student_steps}")
        if not self.student_lr > 0:
            raise ConfigError(f"distill.student_lr must be > 0, got {self.student_lr}")
        if not self.logit_adjustment >= 0:
            raise ConfigError(f"distill.logit_adjustment must be >= 0 (0 turns it off), got {self.logit_adjustment}")
        if self.threads < 0:
            raise ConfigError(f"distill.threads must be >= 0 (0 keeps torch's default), got {self.threads}")
        if self.synthesizer_view not in SYNTHESIZER_VIEWS:
            raise ConfigError(f"distill.synthesizer_view must be one of {', '.join(SYNTHESIZER_VIEWS)}, "
                              f"got {self.synthesizer_view!r}")


@dataclass
class Proposal:
    """A synthesizer's own query batch: the ``queries`` it asks, of which the first ``keep`` are samples worth
    storing (the rest are probes, e.g. the perturbed copies of a zeroth-order estimate), and the ``context`` its
    ``learn`` needs (latents, directions). ``seen`` (``None``: the kept queries themselves) are the images stored
    and learnt from in their place: the same samples drawn as the student will be tested, where the queries were
    transformed for the teacher to read them (AEDM's adapted framing)."""

    queries: torch.Tensor
    keep: int
    context: Any = None
    seen: torch.Tensor | None = None

    @property
    def kept(self) -> torch.Tensor:
        """The images the student learns the answers to the first ``keep`` queries on."""
        return self.queries[:self.keep] if self.seen is None else self.seen


class QuerySynthesizer(Protocol):
    """The swappable part of a distiller: where queries come from, and how that source learns.

    ``propose`` makes the source's own batch (``None`` for a source that learns nothing); once the oracle has
    answered it, ``learn`` takes the source's update and returns the batch the student trains on. In a wave the
    answers may arrive after other proposals were made, so ``learn`` must work from the proposal's context.
    ``store_training`` (``None``: no store) asks the loop to keep every answer and says how the student trains on
    them once the budget is spent.
    """

    store_training: StoreTraining | None

    def queries_per_step(self, batch_size: int, mode: str) -> int:
        """Queries one ``propose`` asks with an oracle in ``mode`` (0 for a source that learns nothing)."""

    def propose(self, student: nn.Module, batch_size: int, mode: str) -> Proposal | None:
        """The source's own query batch for this iteration, if it asks one."""

    def learn(self, student: nn.Module, proposal: Proposal, answers: torch.Tensor,
              replay: Callable[[int], AnsweredBatch]) -> AnsweredBatch:
        """Update the source from ``answers`` to ``proposal.queries``; return the student's batch (``replay(n)``
        draws ``n`` stored answers, when the loop keeps a store)."""

    def sample(self, n: int) -> torch.Tensor:
        """``n`` queries for the student, without gradients."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def make_student_optimizer(student: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """RMSProp, Adam, or SGD with momentum 0.9 and weight decay 5e-4 (DFME's student setting)."""
    if name == "rmsprop":
        return torch.optim.RMSprop(student.parameters(), lr=lr)
    if name == "adam":
        return torch.optim.Adam(student.parameters(), lr=lr)
    if name == "sgd":
        return torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    raise ConfigError(f"unknown student optimizer {name!r}; choose one of {STUDENT_OPTIMIZERS}")


class TimedOracle:
    """An oracle that adds the seconds spent answering to ``seconds["teacher"]`` and is otherwise the oracle."""

    def __init__(self, oracle: Oracle, seconds: dict[str, float]) -> None:
        self.inner, self.seconds = oracle, seconds

    mode = property(lambda self: self.inner.mode)
    budget = property(lambda self: self.inner.budget)
    used = property(lambda self: self.inner.used)
    remaining = property(lambda self: self.inner.remaining)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        try:
            return self.inner(x)
        finally:
            self.seconds["teacher"] += time.perf_counter() - start


class AdjustedStudent(nn.Module):
    """The student as its loss sees it: ``adjust(student(x))``; parameters, modes and gradients are the student's.
    What a synthesizer is handed with ``distill.synthesizer_view = "adjusted"``."""

    def __init__(self, student: nn.Module, adjust: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.student, self.adjust = student, adjust

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adjust(self.student(x))


class BlackBoxDistiller:
    """Runs the shared loop for one student, oracle and synthesizer, in waves; see the module docstring.

    ``wave_size`` is the number of queries one oracle call may carry, rounded down to whole iterations; below one
    iteration's cost (and at 0, the default) every batch is its own call, in the order of the per-batch protocol.
    ``seconds`` splits the wall time into ``teacher`` (inside oracle calls), ``generator`` (the synthesizer,
    teacher time excluded), ``student`` (its online steps) and ``store`` (the store stage). ``precision`` is the
    student's forward passes' (``fedkd.precision``; its losses stay float32). ``answers`` counts every answer by
    class (``AnswerHistogram``); its collapse warning goes to the ``fedkd`` logger once, with ``collapse_cause``
    (``fedkd.distill.histogram.CAUSES``: the oracle is one model, or a federation's combined answer).

    >>> import torch
    >>> from fedkd.distill.baselines import RandomNoise
    >>> from fedkd.oracle import ModelOracle
    >>> teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3))
    >>> student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3))
    >>> oracle = ModelOracle(teacher, mode="label", budget=1000)
    >>> config = DistillConfig(batch_size=100, student_steps=3)
    >>> distiller = BlackBoxDistiller(student, oracle, RandomNoise(1, 28, seed=0), config)
    >>> distiller.run()
    >>> oracle.used, distiller.iterations
    (900, 3)
    """

    def __init__(self, student: nn.Module, oracle: Oracle, synthesizer: QuerySynthesizer,
                 config: DistillConfig, *, wave_size: int = 0, seed: int = 0,
                 store_training: StoreTraining | None = None, precision: str = "fp32",
                 collapse_cause: str = CAUSES["teacher"]) -> None:
        self.student, self.synthesizer, self.config, self.precision = student, synthesizer, config, precision
        self.collapse_cause = collapse_cause
        self.seconds = {"teacher": 0.0, "generator": 0.0, "student": 0.0, "store": 0.0}
        self.oracle = TimedOracle(oracle, self.seconds)
        self.answers = AnswerHistogram()
        self.optimizer = make_student_optimizer(student, config.student_optimizer, config.student_lr)
        self.wave_size = wave_size
        self.store_training = store_training or getattr(synthesizer, "store_training", None)
        self.store = AnswerStore() if self.store_training is not None else None
        self.store_rng = torch_generator(seed, "answer-store", device=next(student.parameters()).device)
        self.synthesizer_student = (AdjustedStudent(student, self.adjusted) if config.synthesizer_view == "adjusted"
                                    else student)
        self.n_classes = 0  # the student's logits' width, from its first step: label answers name only some classes
        self.round = 0
        self.iterations = 0
        self.student_updates = 0
        self.waves = 0
        self.finished = False
        if self.iteration_cost < 1:
            raise ConfigError(f"distill.method = {config.method!r} spends no queries of its own: "
                              f"distill.student_steps must be >= 1, got {config.student_steps}")

    @property
    def iteration_cost(self) -> int:
        """Queries one iteration spends."""
        b = self.config.batch_size
        return self.synthesizer.queries_per_step(b, self.oracle.mode) + self.config.student_steps * b

    def affordable(self, cap: int | None = None) -> int | None:
        """Whole iterations the budget (and ``cap``, a ceiling on ``oracle.used``) can still pay for."""
        left = [n for n in (self.oracle.remaining, None if cap is None else cap - self.oracle.used) if n is not None]
        return max(0, min(left)) // self.iteration_cost if left else None

    def can_step(self, cap: int | None = None) -> bool:
        affordable = self.affordable(cap)
        return affordable is None or affordable >= 1

    def wave_iterations(self, cap: int | None = None) -> int:
        """Iterations the next wave holds: as many as ``wave_size`` and the budget allow, at least one."""
        per_wave = max(1, self.wave_size // self.iteration_cost)
        affordable = self.affordable(cap)
        return per_wave if affordable is None else max(1, min(per_wave, affordable))

    def step(self, cap: int | None = None) -> float:
        """One wave; returns the student's mean loss over its updates. When the budget is spent, the store stage
        follows (``store_training``), once."""
        iterations = self.wave_iterations(cap)
        if self.wave_size < self.iteration_cost:
            losses = [self._train(self._answered_per_batch()) for _ in range(iterations)]
        else:
            losses = [self._train(batches) for batches in self._answered_wave(iterations)]
        self.waves += 1
        warning = self.answers.collapse_warning(remedy_for(self.config.method), self.collapse_cause, self.n_classes)
        if warning is not None:
            log.warning("%s", warning)
        if not self.can_step() and not self.finished:
            self.finish()
        return sum(losses) / len(losses)

    def _propose(self) -> Proposal | None:
        return self.synthesizer.propose(self.synthesizer_student, self.config.batch_size, self.oracle.mode)

    def _answered_per_batch(self) -> list[AnsweredBatch]:
        """One iteration in which every batch is its own oracle call, made after the previous batch's update."""
        with self._generator_time():
            batches = []
            proposal = self._propose()
            if proposal is not None:
                batches.append(self._learn(proposal, self._ask(proposal.queries)))
            for _ in range(self.config.student_steps):
                x = self.synthesizer.sample(self.config.batch_size)
                batches.append(self._keep(x, self._ask(x)))
        return batches

    def _answered_wave(self, iterations: int) -> list[list[AnsweredBatch]]:
        """``iterations`` iterations whose queries are all made first and asked in one oracle call.

        A proposal made for a later iteration of the wave comes from the source as it was when the wave was
        planned, so its ``learn`` sees answers that are up to ``iterations - 1`` updates stale.
        """
        b, steps = self.config.batch_size, self.config.student_steps
        with self._generator_time():
            planned = [(self._propose(), [self.synthesizer.sample(b) for _ in range(steps)])
                       for _ in range(iterations)]
            queries = [q for proposal, fresh in planned
                       for q in ([] if proposal is None else [proposal.queries]) + fresh]
            answers = iter(self._ask(torch.cat(queries)).split([len(q) for q in queries]))
            waves = []
            for proposal, fresh in planned:
                batches = [] if proposal is None else [self._learn(proposal, next(answers))]
                batches += [self._keep(x, next(answers)) for x in fresh]
                waves.append(batches)
        return waves

    def _ask(self, x: torch.Tensor) -> torch.Tensor:
        """The oracle's answers to ``x``, counted in the answer histogram."""
        answers = self.oracle(x)
        self.answers.add(answers)
        return answers

    def _generator_time(self) -> _Timed:
        return _Timed(self.seconds, "generator", exclude="teacher")

    def _keep(self, x: torch.Tensor, answers: torch.Tensor) -> AnsweredBatch:
        if self.store is not None:
            self.store.add(x, answers, self.round)
        return x, answers

    def _learn(self, proposal: Proposal, answers: torch.Tensor) -> AnsweredBatch:
        self._keep(proposal.kept, answers[:proposal.keep])
        return self.synthesizer.learn(self.synthesizer_student, proposal, answers, self.replay)

    def replay(self, n: int) -> AnsweredBatch:
        """``n`` stored answers drawn with replacement, augmented as the store stage augments them."""
        if self.store is None or self.store_training is None:
            raise FedkdError("replay needs an answer store: the synthesizer keeps none (store_training is None)")
        device = next(self.student.parameters()).device
        return draw(self.store, n, self.store_training, self.store_rng, device)

    def _train(self, batches: list[AnsweredBatch]) -> float:
        start = time.perf_counter()
        self.student.train()
        device = next(self.student.parameters()).device
        total = 0.0
        for x, answers in batches:
            with autocast(self.precision, device):
                logits = self.student(x).float()
            self.n_classes = logits.shape[1]
            loss = disagreement(self.adjusted(logits), answers, self.oracle.mode).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
        self.seconds["student"] += time.perf_counter() - start
        self.iterations += 1
        self.student_updates += len(batches)
        return total / len(batches)

    def adjusted(self, logits: torch.Tensor) -> torch.Tensor:
        """The student's ``logits`` as its loss sees them: plus ``tau * log pi`` from the answers so far
        (``DistillConfig.logit_adjustment``), unchanged when that is off."""
        tau = self.config.logit_adjustment
        if not tau:
            return logits
        return logits + tau * log_class_prior(self.answers.counts, logits.shape[1]).to(logits.device)

    def train_on_store(self, training: StoreTraining | None = None) -> int:
        """The store stage (``training``, else ``store_training``): the student trains on every stored answer;
        spends no queries. Returns the optimizer steps taken."""
        training = training or self.store_training
        if self.store is None or training is None:
            return 0
        start = time.perf_counter()
        steps = train_on_store(self.student, self.store, training, self.oracle.mode, self.store_rng, self.precision,
                               self.adjusted)
        self.seconds["store"] += time.perf_counter() - start
        return steps

    def finish(self) -> None:
        """The end of the run's queries: the store stage, once."""
        self.train_on_store()
        self.finished = True

    def run(self, on_iteration: Callable[[BlackBoxDistiller, float], None] | None = None, *, desc: str = "") -> None:
        """Run waves while a whole iteration fits in the budget, calling ``on_iteration(self, loss)`` after each."""
        from fedkd.progress import progress

        budget = self.oracle.budget
        with progress(total=budget, desc=desc or "queries") as bar:
            bar.update(self.oracle.used)
            while self.can_step():
                before = self.oracle.used
                loss = self.step()
                bar.update(self.oracle.used - before)
                if on_iteration is not None:
                    on_iteration(self, loss)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resumed run needs, as safetensors-ready tensors and a JSON-safe dict."""
        tensors, skeleton = flatten(
            {"student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
             "synthesizer": self.synthesizer.state_dict(), "store_rng": self.store_rng.get_state(),
             "store": self.store.state_dict() if self.store is not None else {},
             "answers": self.answers.state_dict()},
            "distiller",
        )
        return tensors, {"skeleton": skeleton, "queries": self.oracle.used, "iterations": self.iterations,
                         "student_updates": self.student_updates, "waves": self.waves, "finished": self.finished,
                         "seconds": dict(self.seconds)}

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Restore what ``state()`` saved; the caller restores the oracle's count (``ModelOracle(used=...)``)."""
        if self.oracle.used != state["queries"]:
            raise FedkdError(f"resuming needs an oracle that has used {state['queries']} queries, "
                              f"this one has used {self.oracle.used}")
        parts = unflatten(state["skeleton"], tensors)
        self.student.load_state_dict(parts["student"])
        self.optimizer.load_state_dict(parts["optimizer"])
        self.synthesizer.load_state_dict(parts["synthesizer"])
        self.store_rng.set_state(parts["store_rng"])
        self.answers.load_state_dict(parts["answers"])
        if self.store is not None:
            self.store.load_state_dict(parts["store"])
        self.iterations, self.student_updates = state["iterations"], state["student_updates"]
        self.waves, self.finished = state["waves"], state["finished"]
        self.seconds.update(state["seconds"])


class _Timed:
    """Adds the wall time of a block to ``seconds[part]``, less what ``seconds[exclude]`` grew by meanwhile."""

    def __init__(self, seconds: dict[str, float], part: str, exclude: str) -> None:
        self.seconds, self.part, self.exclude = seconds, part, exclude

    def __enter__(self) -> None:
        self.start, self.excluded = time.perf_counter(), self.seconds[self.exclude]

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.start - (self.seconds[self.exclude] - self.excluded)
        self.seconds[self.part] += elapsed
