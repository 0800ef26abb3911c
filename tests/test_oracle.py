"""The oracle's query count is the yardstick of every black-box benchmark: it must be exact."""

from __future__ import annotations

import doctest

import pytest
import torch

import fedkd.oracle
from fedkd.errors import FedkdError
from fedkd.oracle import ModelOracle, Oracle, QueryBudgetExceeded


class CountingTeacher(torch.nn.Module):
    """A linear teacher that records how many samples it actually saw."""

    def __init__(self, n_features: int = 12, n_classes: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(n_features, n_classes)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.linear(x.flatten(1))


def test_docstring_example_runs() -> None:
    assert doctest.testmod(fedkd.oracle).failed == 0


@pytest.mark.parametrize("mode", ["label", "proba"])
@pytest.mark.parametrize("batch_size", [1, 7, 64, 1024])
def test_budget_accounting_is_exact_across_batch_sizes_and_modes(mode: str, batch_size: int) -> None:
    teacher = CountingTeacher()
    oracle = ModelOracle(teacher, mode=mode, budget=500, batch_size=batch_size)
    requests = [1, 33, 100, 0, 250, 116]  # sums to exactly 500
    for n in requests:
        answers = oracle(torch.randn(n, 12))
        assert len(answers) == n
    assert oracle.used == 500 == teacher.seen
    assert oracle.remaining == 0
    with pytest.raises(QueryBudgetExceeded):
        oracle(torch.randn(1, 12))


def test_chunking_does_not_change_answers() -> None:
    teacher = CountingTeacher()
    x = torch.randn(100, 12)
    whole = ModelOracle(teacher, mode="proba", batch_size=1024)(x)
    chunked = ModelOracle(teacher, mode="proba", batch_size=9)(x)
    torch.testing.assert_close(whole, chunked)


def test_exceeding_the_budget_raises_before_the_teacher_runs() -> None:
    teacher = CountingTeacher()
    oracle = ModelOracle(teacher, mode="label", budget=10)
    oracle(torch.randn(8, 12))
    with pytest.raises(QueryBudgetExceeded, match=r"asked 3 queries, used 8 of 10"):
        oracle(torch.randn(3, 12))
    assert oracle.used == 8 and teacher.seen == 8  # no partial answer, no hidden teacher call
    assert len(oracle(torch.randn(2, 12))) == 2  # what still fits is answered


def test_label_mode_returns_class_indices_only() -> None:
    teacher = CountingTeacher(n_classes=5)
    x = torch.randn(40, 12, requires_grad=True)
    labels = ModelOracle(teacher, mode="label")(x)
    assert labels.dtype == torch.int64 and labels.shape == (40,)
    assert not labels.requires_grad and labels.grad_fn is None
    assert labels.min() >= 0 and labels.max() < 5
    assert torch.equal(labels, teacher(x).argmax(1))


def test_proba_mode_returns_probabilities_without_gradient() -> None:
    teacher = CountingTeacher(n_classes=5)
    x = torch.randn(40, 12, requires_grad=True)
    probs = ModelOracle(teacher, mode="proba")(x)
    assert probs.dtype == torch.float32 and probs.shape == (40, 5)
    assert probs.grad_fn is None
    torch.testing.assert_close(probs.sum(1), torch.ones(40))
    assert all(p.grad is None for p in teacher.parameters())


def test_wraps_any_callable_and_satisfies_the_protocol() -> None:
    calls: list[int] = []

    def remote_teacher(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return torch.nn.functional.one_hot(x[:, 0].long().clamp(0, 2), 3).float()

    oracle = ModelOracle(remote_teacher, mode="label", batch_size=4)
    assert isinstance(oracle, Oracle)
    assert oracle(torch.tensor([[0.0], [1.0], [2.0], [5.0], [1.0]])).tolist() == [0, 1, 2, 2, 1]
    assert calls == [4, 1] and oracle.used == 5 and oracle.remaining is None


def test_resumed_count_and_bad_arguments() -> None:
    oracle = ModelOracle(CountingTeacher(), budget=100, used=90)
    assert oracle.remaining == 10
    with pytest.raises(FedkdError, match="mode 'logits'"):
        ModelOracle(CountingTeacher(), mode="logits")  # type: ignore[arg-type]
    with pytest.raises(FedkdError, match="budget -1"):
        ModelOracle(CountingTeacher(), budget=-1)
    with pytest.raises(FedkdError, match="used 200"):
        ModelOracle(CountingTeacher(), budget=100, used=200)
