"""The class histogram of the teacher's answers: the one sign, visible in label mode too, that queries miss.

A black-box distiller cannot see the teacher's data, but it sees every answer. When the query source is off the
teacher's domain (a prior on other writers' digits drawn in another stroke width, a generator that has not
learnt yet, noise) the teacher reads most queries as one class, each answer then carries almost no information,
and the student ends near chance -- with nothing in the run saying why. ``AnswerHistogram`` counts the answers
(the arg-max class in proba mode), gives the run's ``answer_entropy`` and ``answer_top_share`` metrics, and a
one-line warning once the answers collapse onto few classes (``COLLAPSE_ENTROPY``).

>>> import torch
>>> histogram = AnswerHistogram(warn_after=4)
>>> histogram.add(torch.tensor([3, 3, 3, 1]))
>>> histogram.top_share(), round(histogram.entropy(), 3)
(0.75, 0.562)
>>> print(histogram.collapse_warning())  # doctest: +ELLIPSIS
answers collapsed onto few classes: the teacher answered class 3 to 75% of the first 4 queries, and ...
>>> histogram.collapse_warning() is None  # once
True
"""

from __future__ import annotations

import math

import torch

#: Answers whose entropy is below this fraction of ``log C`` (answers spread evenly over the ``C`` classes) have
#: collapsed: with 0.5, they spread like fewer than sqrt(C) equally likely classes (3.2 of 10). A rule on the top
#: class's share alone (more than half of the answers, the issue's example) also fires where the other answers still
#: spread over the other classes and teach the student: ``aedm_mnist.toml`` on the shipped ``mnist5k-mlp-s0``
#: teacher (0.58 of the answers one class, 4.6 classes' worth of entropy, the student at 0.96 of the teacher;
#: ``benchmarks/results/teacher_panel_distill.csv``); the answers that did collapse there (random noise, the MLP body
#: on batch-norm teachers: 1.0-1.2 classes' worth) and the issue's ResNet-8 on framed public digits are far below it.
COLLAPSE_ENTROPY = 0.5
#: Queries answered before the histogram is judged: enough for any query source to have left its start.
WARN_AFTER = 5_000
#: What to try, by query source: a prior's framing can be changed; a generator that starts from noise cannot be
#: steered to inputs the teacher reads as other classes when every input it reaches is read as one, but what its
#: body draws can be changed: the batch-norm teachers of the panel read the MLP body's smooth images as one class
#: and its pen strokes as many (``benchmarks/teacher_panel.py``).
REMEDIES = {
    "aedm": "try queries closer to the teacher's inputs (aedm.adapt_queries, another prior or aedm.query_box, "
            "distill.method = 'real' with public data) or check the teacher",
    "generator": "a generator that starts from noise rarely leaves inputs read as one class; if it draws smooth "
                 "images (tandemgan.body or dfme.body = 'mlp'), try 'strokes', which batch-norm teachers read as "
                 "many classes; else try distill.method = 'aedm' with a prior of public data or 'real' with public "
                 "data, or check the teacher",
}
#: Why the answers collapse, by who answers: a model the user holds reads queries off its domain as one class; a
#: federation's combined answer also collapses while its clients have seen few labels or classes (the first rounds
#: of a crowd that arrives in chunks: the shipped ``fed_tandem.toml`` at round 1), and spreads as they learn.
CAUSES = {
    "teacher": "it reads the queries as one or a few classes, so the query source is likely off the teacher's "
               "domain and the student will learn little",
    "federation": "the teacher is the clients' combined answer, and clients that have seen few labels or few classes "
                  "so far (the first rounds of a crowd that arrives in chunks, skewed partitions) answer most "
                  "queries with one class; the student learns little from such rounds, and if the answers stay "
                  "collapsed once the clients have their labels, the query source is likely off their domain",
}
#: The query sources that are generators trained from noise (the rest draw from a prior, data or noise directly).
GENERATOR_METHODS = frozenset({"tandemgan", "dfme"})


def remedy_for(method: str) -> str:
    """The ``REMEDIES`` entry for a run of ``distill.method`` ``method``."""
    return REMEDIES["generator" if method in GENERATOR_METHODS else "aedm"]


class AnswerHistogram:
    """Counts of the teacher's answers per class, cumulative over the run, and the collapse warning.

    ``entropy`` is in nats, from 0 (one class) to ``log C`` (all ``C`` classes equally often; 2.303 for ten
    classes), over the classes answered so far. ``collapse_warning`` returns its message once, at the first call
    after ``warn_after`` answers that have ``collapsed``; the counts are part of a run's checkpoint
    (``state_dict``), so a resumed run logs the same metrics.
    """

    def __init__(self, warn_after: int = WARN_AFTER, collapse_entropy: float = COLLAPSE_ENTROPY) -> None:
        self.counts = torch.zeros(0, dtype=torch.int64, device="cpu")  # a few integers: kept on the CPU, any device
        self.warn_after, self.collapse_entropy = warn_after, collapse_entropy
        self.warned = False

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, answers: torch.Tensor) -> None:
        """Count ``answers``: class indices (label mode) or one row of probabilities per query (proba mode)."""
        classes = (answers if answers.dim() == 1 else answers.argmax(dim=1)).detach().cpu()
        width = max(len(self.counts), int(classes.max()) + 1 if len(classes) else 0,
                    answers.shape[1] if answers.dim() == 2 else 0)
        counts = torch.bincount(classes, minlength=width)
        counts[:len(self.counts)] += self.counts
        self.counts = counts

    def entropy(self) -> float:
        """The entropy (nats) of the answered classes' frequencies; nan before any answer."""
        if not self.total:
            return float("nan")
        p = self.counts[self.counts > 0].double() / self.total
        return float(-(p * p.log()).sum()) + 0.0  # + 0.0: one class gives 0.0, not -0.0

    def entropy_error(self) -> float:
        """The standard error of ``entropy`` (nats) as an estimate from this many answers (the delta method:
        ``sqrt((sum_c p_c log^2 p_c - H^2) / N)``); nan before any answer."""
        if not self.total:
            return float("nan")
        p = self.counts[self.counts > 0].double() / self.total
        spread = float((p * p.log() ** 2).sum()) - self.entropy() ** 2
        return (max(spread, 0.0) / self.total) ** 0.5

    def top_share(self) -> float:
        """The share of the answers that name the most frequent class; nan before any answer."""
        return float(self.counts.max()) / self.total if self.total else float("nan")

    def metrics(self) -> dict[str, float]:
        """``answer_entropy`` and ``answer_top_share``; empty before any answer."""
        return {"answer_entropy": self.entropy(), "answer_top_share": self.top_share()} if self.total else {}

    def classes(self, n_classes: int = 0) -> int:
        """``C``: the larger of ``n_classes`` and the classes seen (label answers name only those answered so far)."""
        return max(n_classes, len(self.counts))

    def collapsed(self, n_classes: int = 0) -> bool:
        """Whether the answers' entropy is below ``collapse_entropy * log C`` (``classes``)."""
        classes = self.classes(n_classes)
        return classes > 1 and self.entropy() < self.collapse_entropy * math.log(classes)

    def collapse_warning(self, remedy: str = REMEDIES["aedm"], cause: str = CAUSES["teacher"],
                         n_classes: int = 0) -> str | None:
        """The one-line warning, the first time ``warn_after`` answers or more have collapsed (``collapsed``),
        with its likely ``cause`` (``CAUSES``, by who answers) and ending with ``remedy`` (``REMEDIES``, by query
        source); else ``None``."""
        if self.warned or self.total < self.warn_after or not self.collapsed(n_classes):
            return None
        self.warned = True
        return (f"answers collapsed onto few classes: the teacher answered class {int(self.counts.argmax())} to "
                f"{self.top_share():.0%} of the first {self.total:,} queries, and its answers spread like "
                f"{math.exp(self.entropy()):.1f} equally likely classes of {self.classes(n_classes)} (answer entropy "
                f"{self.entropy():.2f} nats): {cause}; {remedy}")

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.counts = state["counts"].to(torch.int64).clone()
