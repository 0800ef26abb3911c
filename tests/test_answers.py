"""Combining clients' answers: mean of probabilities, or an aggregator treating clients as annotators."""

import pytest
import torch

from fedkd.errors import ConfigError
from fedkd.federation.answers import AnswerCombiner, coverage_likelihoods


def _federation_answers(truth: torch.Tensor, error_rates: list[float], gen: torch.Generator) -> dict[int, torch.Tensor]:
    answers = {}
    for pid, rate in enumerate(error_rates):
        wrong = torch.rand(len(truth), generator=gen) < rate
        answers[pid] = torch.where(wrong, torch.randint(0, 10, truth.shape, generator=gen), truth)
    return answers


def test_probabilities_are_averaged_and_labels_become_vote_shares():
    probs = {0: torch.tensor([[0.8, 0.2], [0.4, 0.6]]), 1: torch.tensor([[0.6, 0.4], [0.0, 1.0]])}
    assert torch.allclose(AnswerCombiner("mean", 2)(probs), torch.tensor([[0.7, 0.3], [0.2, 0.8]]))
    labels = {0: torch.tensor([0, 1]), 1: torch.tensor([0, 0]), 2: torch.tensor([0, 1])}
    shares = AnswerCombiner("mean", 2)(labels)
    assert torch.allclose(shares, torch.tensor([[1.0, 0.0], [1 / 3, 2 / 3]]))


def test_an_online_aggregator_learns_which_clients_to_trust():
    gen = torch.Generator().manual_seed(0)
    rates = [0.1, 0.9, 0.9, 0.2, 0.9]  # two good clients, three that answer almost at random
    combiners = {name: AnswerCombiner(name, 10, seed=0) for name in ("mean", "bila")}
    accuracy = {name: [] for name in combiners}
    for _ in range(5):
        truth = torch.randint(0, 10, (200,), generator=gen)
        answers = _federation_answers(truth, rates, gen)
        for name, combine in combiners.items():
            proba = combine(answers)
            assert proba.shape == (200, 10) and torch.allclose(proba.sum(dim=1), torch.ones(200), atol=1e-5)
            accuracy[name].append((proba.argmax(dim=1) == truth).float().mean().item())
    assert sum(accuracy["bila"][1:]) > sum(accuracy["mean"][1:]) + 0.2  # better after its first batch
    assert combiners["bila"].tasks_seen == 1000


def test_state_round_trip_continues_identically():
    gen = torch.Generator().manual_seed(1)
    a, b = AnswerCombiner("ds", 10, seed=3), AnswerCombiner("ds", 10, seed=3)
    first = _federation_answers(torch.randint(0, 10, (50,), generator=gen), [0.1, 0.5, 0.8], gen)
    a(first)
    b.load_state_dict(a.state_dict())
    second = _federation_answers(torch.randint(0, 10, (50,), generator=gen), [0.1, 0.5, 0.8], gen)
    assert torch.equal(a(second), b(second))


def test_unknown_method_and_empty_answers_are_errors():
    with pytest.raises(ConfigError, match="choose one of"):
        AnswerCombiner("median", 10)
    with pytest.raises(ValueError, match="no client answered"):
        AnswerCombiner("mean", 10)({})


def test_class_aware_weighs_each_client_by_its_share_of_the_class():
    # Client 0 saw only class 0, client 1 only class 1: each one's vote counts for the class it knows.
    combine = AnswerCombiner("class_aware", 2)
    combine.set_label_counts({0: [10, 0], 1: [0, 10], 2: [5, 5]})
    confident = {0: torch.tensor([[0.9, 0.1]]), 1: torch.tensor([[0.2, 0.8]]), 2: torch.tensor([[0.5, 0.5]])}
    proba = combine(confident)
    expected = torch.tensor([[0.9 * 10 / 15 + 0.5 * 5 / 15, 0.8 * 10 / 15 + 0.5 * 5 / 15]])
    assert torch.allclose(proba, expected / expected.sum())
    labels = combine({0: torch.tensor([0, 0]), 1: torch.tensor([0, 1]), 2: torch.tensor([1, 1])})
    assert labels.argmax(dim=1).tolist() == [0, 1]  # a client's vote for a class it never saw weighs nothing
    with pytest.raises(ValueError, match="no label counts for clients \\[3\\]"):
        combine({3: torch.tensor([0])})


def test_reading_combines_with_the_reliabilities_learnt_so_far_and_learns_nothing():
    gen = torch.Generator().manual_seed(2)
    rates = [0.1, 0.9, 0.9, 0.2, 0.9]
    learnt = AnswerCombiner("ds", 10, seed=0)
    for _ in range(3):
        learnt(_federation_answers(torch.randint(0, 10, (200,), generator=gen), rates, gen))
    state = learnt.state_dict()
    truth = torch.randint(0, 10, (200,), generator=gen)
    fresh_answers = _federation_answers(truth, rates, gen)
    read = learnt.read(fresh_answers)
    assert learnt.state_dict()["tasks_seen"] == 600 and torch.equal(learnt.read(fresh_answers), read)
    assert (read.argmax(dim=1) == truth).float().mean() > 0.85  # the good clients' answers, as learnt
    # a fresh DS given only these answers would learn from them; reading the learnt one does not
    assert not torch.equal(read, AnswerCombiner("ds", 10, seed=0)(fresh_answers))
    unread = AnswerCombiner("ds", 10, seed=0)
    unread.load_state_dict(state)
    assert torch.equal(learnt(fresh_answers), unread(fresh_answers))  # reading left the learnt state as it was
    mean = AnswerCombiner("mean", 10)
    assert torch.equal(mean.read(fresh_answers), mean(fresh_answers))


def _skewed_federation(gen: torch.Generator, n: int) -> tuple[dict, dict, torch.Tensor, torch.Tensor]:
    """Clients as at Dirichlet(0.1): each saw two or three classes, one of them mostly, and answers an image of a
    class it never saw with one of its own classes (as its labels are spread). Also the Bayes posterior's log of
    this very rule (the best any reading can do)."""
    counts = {0: [300, 60, 0, 0, 0, 0, 0, 0, 0, 0], 1: [0, 0, 250, 80, 0, 0, 0, 0, 0, 0],
              2: [0, 0, 0, 0, 200, 90, 0, 0, 0, 0], 3: [0, 0, 0, 0, 0, 0, 300, 40, 40, 0],
              4: [0, 0, 0, 0, 0, 0, 0, 0, 0, 150], 5: [40, 0, 0, 0, 300, 0, 0, 0, 0, 0]}
    truth = torch.randint(0, 10, (n,), generator=gen)
    answers, bayes = {}, torch.zeros(n, 10)
    for pid, row in counts.items():
        spread = torch.tensor(row, dtype=torch.float32) / sum(row)
        own = torch.multinomial(spread, n, replacement=True, generator=gen)
        knows = torch.tensor(row) >= 40
        right = torch.rand(n, generator=gen) < 0.9
        answers[pid] = torch.where(knows[truth] & right, truth, own)
        rule = torch.where(knows[:, None], 0.9 * torch.eye(10) + 0.1 * spread, spread.expand(10, 10))
        bayes += torch.log(rule[:, answers[pid]].T.clamp_min(1e-12))
    return counts, answers, truth, bayes


def test_coverage_reads_a_clients_answer_against_the_classes_it_knows_only():
    counts, answers, truth, bayes = _skewed_federation(torch.Generator().manual_seed(4), 2000)
    accuracy = {"bayes": (bayes.argmax(dim=1) == truth).float().mean().item()}
    for method in ("mean", "class_aware", "coverage"):
        combine = AnswerCombiner(method, 10)
        combine.set_label_counts(counts)
        proba = combine(answers)
        assert proba.shape == (2000, 10) and torch.allclose(proba.sum(dim=1), torch.ones(2000), atol=1e-5)
        accuracy[method] = (proba.argmax(dim=1) == truth).float().mean().item()
    # the clients that never saw a class outvote the one that did under a vote, weighted or not; the histograms
    # alone give about what the rule that made the answers gives
    assert accuracy["coverage"] > accuracy["bayes"] - 0.02
    assert max(accuracy["mean"], accuracy["class_aware"]) < accuracy["bayes"] - 0.1
    likelihoods = coverage_likelihoods(torch.tensor([[300.0, 300.0, 0.0]]), items=30.0, accuracy=0.9)[0]
    assert torch.allclose(likelihoods.sum(dim=1), torch.ones(3))
    # an image of a class it never saw: it answers as its labels are spread
    assert likelihoods[2, 0].item() == pytest.approx(301 / 603)
    # "0" is (1 - known * accuracy) times as likely for class 1, which it knows, as for class 2
    assert likelihoods[1, 0].item() == pytest.approx((1 - 300 / 330 * 0.9) * 301 / 603)


def test_coverage_is_fixed_and_reads_probabilities_as_a_mixture_of_labels():
    counts, answers, _, _ = _skewed_federation(torch.Generator().manual_seed(5), 50)
    combine = AnswerCombiner("coverage", 10)
    combine.set_label_counts(counts)
    first = combine(answers)
    assert torch.equal(combine.read(answers), first) and torch.equal(combine(answers), first)
    one_hot = {pid: torch.nn.functional.one_hot(a, 10).float() for pid, a in answers.items()}
    assert torch.allclose(combine(one_hot), first, atol=1e-6)
    with pytest.raises(ValueError, match="coverage combination has no label counts for clients \\[9\\]"):
        combine({9: torch.tensor([0])})
