"""The loop every black-box distiller shares: synthesize queries, ask the oracle, train the student.

A distillation run is a *pipeline* of three swappable parts: a ``QuerySynthesizer`` (TandemGAN, DFME,
random noise, real data: the part that differs between methods), an ``Oracle`` (a local teacher, or a
federation behind messages) and the student. One iteration is

1. ``synthesizer.step(student, oracle, B)``: the method's own generator updates; it may query the
   teacher and returns the batch it paid for, which the student then trains on (no query is wasted);
2. ``student_steps`` times: ``x = synthesizer.sample(B)``, ``a = oracle(x)``, one optimizer step on
   ``mean_i disagreement(S(x_i), a_i)``.

Every method runs under the same loop, student, optimizer and budget, so a benchmark compares query
synthesis and nothing else. An iteration starts only if its whole cost fits in the remaining budget,
so a run ends on a complete iteration, never on a ``QueryBudgetExceeded``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn

from fedkd.distill.losses import disagreement
from fedkd.distill.state import flatten, unflatten
from fedkd.errors import ConfigError, FedkdError
from fedkd.oracle import Oracle

AnsweredBatch = tuple[torch.Tensor, torch.Tensor]
STUDENT_OPTIMIZERS: tuple[str, ...] = ("rmsprop", "adam", "sgd")


@dataclass
class DistillConfig:
    """The shared loop's settings: the method, the oracle's answer mode and budget, and the student's training.

    ``student_steps`` fresh query batches follow each synthesizer step (DFME's ``n_S = 5``); 0 leaves the
    student to the batch the synthesizer returns (AEDM, whose batches must all reach its memory).
    ``eval_every`` and ``checkpoint_every`` are in queries. ``threads`` is torch's thread count for the
    run (0 keeps torch's default): these small networks run fastest on one thread, and five times
    slower on two threads of a busy 2-core machine.
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

    def validate(self) -> None:
        for name in ("budget", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"distill.{name} must be >= 1, got {getattr(self, name)}")
        if self.student_steps < 0:
            raise ConfigError(f"distill.student_steps must be >= 0, got {self.student_steps}")
        if not self.student_lr > 0:
            raise ConfigError(f"distill.student_lr must be > 0, got {self.student_lr}")
        if self.threads < 0:
            raise ConfigError(f"distill.threads must be >= 0 (0 keeps torch's default), got {self.threads}")


class QuerySynthesizer(Protocol):
    """The swappable part of a distiller: where queries come from, and how that source learns."""

    def queries_per_step(self, batch_size: int, mode: str) -> int:
        """Queries one ``step`` spends with an oracle in ``mode`` (0 for a source that learns nothing)."""

    def step(self, student: nn.Module, oracle: Oracle, batch_size: int) -> AnsweredBatch | None:
        """Update the query source once; return the (queries, answers) it paid for, if any."""

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


class BlackBoxDistiller:
    """Runs the shared loop for one student, oracle and synthesizer; see the module docstring.

    ``seconds`` splits the wall time into ``teacher`` (inside oracle calls), ``generator`` (the
    synthesizer, teacher time excluded) and ``student`` (its optimizer steps).

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
                 config: DistillConfig) -> None:
        self.student, self.synthesizer, self.config = student, synthesizer, config
        self.seconds = {"teacher": 0.0, "generator": 0.0, "student": 0.0}
        self.oracle = TimedOracle(oracle, self.seconds)
        self.optimizer = make_student_optimizer(student, config.student_optimizer, config.student_lr)
        self.iterations = 0
        self.student_updates = 0
        if self.iteration_cost < 1:
            raise ConfigError(f"distill.method = {config.method!r} spends no queries of its own: "
                              f"distill.student_steps must be >= 1, got {config.student_steps}")

    @property
    def iteration_cost(self) -> int:
        """Queries one iteration spends."""
        b = self.config.batch_size
        return self.synthesizer.queries_per_step(b, self.oracle.mode) + self.config.student_steps * b

    def can_step(self) -> bool:
        remaining = self.oracle.remaining
        return remaining is None or remaining >= self.iteration_cost

    def step(self) -> float:
        """One iteration; returns the student's mean loss over its updates."""
        b = self.config.batch_size
        start, teacher_before = time.perf_counter(), self.seconds["teacher"]
        self.student.eval()
        answered = self.synthesizer.step(self.student, self.oracle, b)
        batches: list[AnsweredBatch] = [] if answered is None else [answered]
        for _ in range(self.config.student_steps):
            x = self.synthesizer.sample(b)
            batches.append((x, self.oracle(x)))
        self.seconds["generator"] += time.perf_counter() - start - (self.seconds["teacher"] - teacher_before)

        start = time.perf_counter()
        self.student.train()
        total = 0.0
        for x, answers in batches:
            loss = disagreement(self.student(x), answers, self.oracle.mode).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
        self.seconds["student"] += time.perf_counter() - start
        self.iterations += 1
        self.student_updates += len(batches)
        return total / len(batches)

    def run(self, on_iteration: Callable[[BlackBoxDistiller, float], None] | None = None, *, desc: str = "") -> None:
        """Iterate while a whole iteration fits in the budget, calling ``on_iteration(self, loss)`` after each."""
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
             "synthesizer": self.synthesizer.state_dict()},
            "distiller",
        )
        return tensors, {"skeleton": skeleton, "queries": self.oracle.used, "iterations": self.iterations,
                         "student_updates": self.student_updates, "seconds": dict(self.seconds)}

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Restore what ``state()`` saved; the caller restores the oracle's count (``ModelOracle(used=...)``)."""
        if self.oracle.used != state["queries"]:
            raise FedkdError(f"resuming needs an oracle that has used {state['queries']} queries, "
                              f"this one has used {self.oracle.used}")
        parts = unflatten(state["skeleton"], tensors)
        self.student.load_state_dict(parts["student"])
        self.optimizer.load_state_dict(parts["optimizer"])
        self.synthesizer.load_state_dict(parts["synthesizer"])
        self.iterations, self.student_updates = state["iterations"], state["student_updates"]
        self.seconds.update(state["seconds"])
