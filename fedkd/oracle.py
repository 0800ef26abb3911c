"""The teacher a distiller may query: label-only or probabilities, with an exact query budget.

The oracle is the only door to a teacher. Every distiller (TandemGAN, DFME, AEDM, the baselines) asks
it for answers, so the query count it keeps is the one that benchmarks compare methods by. The same
methods run federated by passing an oracle whose callable sends query messages to clients instead of
calling a local model; nothing else changes.

Two rules make the count trustworthy:

* the budget is checked *before* the teacher runs, for the whole request: a request that does not fit
  raises :class:`QueryBudgetExceeded` and answers nothing (never a silently truncated batch);
* a label-only oracle returns class indices and nothing else, so a method cannot leak probabilities
  or logits into a setting that forbids them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import torch

from fedkd.errors import FedkdError
from fedkd.train import INFERENCE_BATCH

OracleMode = Literal["label", "proba"]
ORACLE_MODES: tuple[str, ...] = ("label", "proba")


class QueryBudgetExceeded(FedkdError):
    """A request to an oracle asked for more queries than its budget has left."""

    def __init__(self, asked: int, used: int, budget: int) -> None:
        self.asked, self.used, self.budget = asked, used, budget
        super().__init__(
            f"query budget exceeded: asked {asked} queries, used {used} of {budget} "
            f"({budget - used} left); raise the budget or ask for fewer"
        )


@runtime_checkable
class Oracle(Protocol):
    """What a distiller needs from a teacher: answers for a batch, and an exact count of queries."""

    mode: str
    budget: int | None
    used: int

    @property
    def remaining(self) -> int | None: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class ModelOracle:
    """Answers queries with a local model (or any callable ``x -> logits``) and counts every sample.

    ``mode="label"`` answers ``argmax`` class indices (``int64``, shape ``(N,)``); ``mode="proba"``
    answers ``softmax`` probabilities (``float32``, shape ``(N, C)``). Each call costs ``len(x)``
    queries. The teacher runs under ``torch.no_grad`` on a detached copy of ``x`` in chunks of
    ``batch_size`` (a memory setting only: it never changes the count), so no gradient can flow to or
    through it. A ``torch.nn.Module`` teacher is put in eval mode and sees the queries on its own device; the
    answers come back on the device the queries came from.

    ``used`` restores the count of a resumed run.

    >>> import torch
    >>> teacher = torch.nn.Linear(4, 3)
    >>> oracle = ModelOracle(teacher, mode="label", budget=10)
    >>> oracle(torch.zeros(6, 4)).dtype, oracle.used, oracle.remaining
    (torch.int64, 6, 4)
    >>> oracle(torch.zeros(5, 4))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fedkd.oracle.QueryBudgetExceeded: query budget exceeded: asked 5 queries, used 6 of 10 (4 left); ...
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        mode: OracleMode = "label",
        budget: int | None = None,
        batch_size: int = INFERENCE_BATCH,
        used: int = 0,
    ) -> None:
        if mode not in ORACLE_MODES:
            raise FedkdError(f"oracle mode {mode!r} is not one of {ORACLE_MODES}")
        if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget < 0):
            raise FedkdError(f"oracle budget {budget!r} must be a non-negative integer or None")
        if int(batch_size) != batch_size or batch_size < 1:
            raise FedkdError(f"oracle batch_size {batch_size!r} must be a positive integer")
        if int(used) != used or used < 0 or (budget is not None and used > budget):
            raise FedkdError(f"oracle used {used!r} must be an integer in [0, budget={budget}]")
        self._device = None  # a plain callable takes queries where they are
        if isinstance(model, torch.nn.Module):
            model.eval()
            self._device = next((p.device for p in model.parameters()), None)
        self._model = model
        self.mode: str = mode
        self.budget: int | None = None if budget is None else int(budget)
        self.batch_size = int(batch_size)
        self.used = int(used)

    @property
    def remaining(self) -> int | None:
        """Queries left, or ``None`` for an unlimited oracle."""
        return None if self.budget is None else self.budget - self.used

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1:
            raise FedkdError(f"an oracle query must be a tensor with a batch dimension, got {type(x).__name__}")
        asked = int(x.shape[0])
        if self.budget is not None and self.used + asked > self.budget:
            raise QueryBudgetExceeded(asked, self.used, self.budget)
        with torch.no_grad():
            queries = x.detach().to(self._device) if self._device is not None else x.detach()
            logits = torch.cat([self._model(chunk) for chunk in queries.split(self.batch_size)])
        self.used += asked
        if self.mode == "label":
            return logits.argmax(dim=1).to(x.device)
        return torch.softmax(logits.float(), dim=1).to(x.device)
