"""The server side of data-free federated distillation: the clients' knowledge reaches a global student through
answers to queries only, never their data or weights.

Each round the sampled clients take in their new labels, clean them and train their own models (which may differ
in architecture). The server then runs the shared black-box loop (``fedkd.distill``) with the federation as its
teacher: each oracle call is a *wave* of queries sent to every sampled client in one message (``uint8`` images),
answered in one reply (labels in the smallest integer type, or ``float16`` probabilities), and the answers are
combined (``fedkd.federation.answers``) into the federation's answer. The budget (``distill.budget``, spread
evenly over the rounds from ``query.first_round`` on) is counted by the oracle, exactly as in a centralized run.

* ``tandemgan``: queries from a TandemGAN generator (exploration + exploitation), no data at all.
* ``aedm``: queries decoded from a diffusion prior trained on public data, its input noise steered to where the
  student is unsure; every answer is kept in the loop's store and the student trains on all of them.
* ``real``: queries drawn from unlabeled public data (``query.public_dataset``), FedDF-style ensemble
  distillation through answers only.

After each round the clients also answer the test images, outside the budget (evaluation, not training):
``test_acc/ensemble`` is the accuracy of their combined answer, the upper reference for the student, and
``fidelity`` the student's agreement with it. A combiner that learns the clients (an aggregator such as ``ds``)
learns them from the queries' answers, and the clients read the queries unlike their own digits: the same test
answers combined by the run's combiner as it learnt the clients on the queries, learning nothing from the test
answers, give ``test_acc/ensemble_as_taught``, the committee the student was in fact taught by. A run that reads
the clients by ``coverage`` (a fixed reading from their label histograms) logs it too and is judged against the
Dawid-Skene reading of the test answers; the averaging combiners, whose reading is the reference, log none.
``query.eval_references`` adds the one-shot protocol's references
(``fedkd.federation.references``); ``answer_entropy`` and ``answer_top_share`` describe the combined answers so
far (``fedkd.distill.histogram``). This module knows nothing of Flower: the round runs against a
``ClientLink``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from fedkd.config import ExperimentConfig
from fedkd.data import load_dataset
from fedkd.distill.experiment import build_synthesizer
from fedkd.distill.histogram import CAUSES
from fedkd.distill.loop import BlackBoxDistiller
from fedkd.distill.state import flatten, unflatten
from fedkd.errors import ConfigError, FedkdError
from fedkd.federation.answers import COMBINE_CLASS_AWARE, COMBINE_COVERAGE, COMBINE_MEAN, AnswerCombiner
from fedkd.federation.data import train_test
from fedkd.federation.local import build_model, client_architecture
from fedkd.federation.references import accuracy_of_answers, average_weights
from fedkd.federation.rounds import ClientLink, RoundOutcome, TrainReplies
from fedkd.federation.sampling import sampled_partitions
from fedkd.models import build_classifier
from fedkd.oracle import ModelOracle
from fedkd.payload import encode_images, expand_answers
from fedkd.seeding import derive_seed
from fedkd.train import evaluate_accuracy


class QueryServer:
    """The global student, its query source and the federation's oracle, run round by round against a link."""

    def __init__(self, cfg: ExperimentConfig, method: str) -> None:
        if cfg.distill.method != method:
            raise ConfigError(
                f"federation.strategy = {cfg.federation.strategy!r} synthesizes queries with {method!r}; "
                f"set distill.method = {method!r} (got {cfg.distill.method!r})"
            )
        if cfg.query.first_round > cfg.federation.num_rounds:
            raise ConfigError(
                f"query.first_round = {cfg.query.first_round} is after the last round "
                f"(federation.num_rounds = {cfg.federation.num_rounds}); no query would be sent"
            )
        self.cfg = cfg
        _, test = train_test(cfg)
        self.shape, self.n_classes = (test.channels, test.image_size, test.image_size), test.n_classes
        self.x_test, self.y_test = test.tensors(cfg.run.device)
        self.combiner = self._combiner(cfg.query.combine, "combiner")
        self.link: ClientLink | None = None
        self.server_round = 0
        self.partitions: list[int] = []

    def build_student(self) -> torch.nn.Module:
        """The global student with its oracle and distiller (called once, after the driver seeded torch)."""
        cfg = self.cfg
        student = build_classifier(cfg.distill.student_model, self.shape[0], self.shape[1], self.n_classes)
        student.to(cfg.run.device)
        self.oracle = ModelOracle(self._ask_federation, mode=cfg.distill.mode, budget=cfg.distill.budget,
                                  batch_size=cfg.distill.budget)
        synthesizer = build_synthesizer(cfg, self.shape[0], self.shape[1], cfg.data.dataset, self.public_pool)
        self.distiller = BlackBoxDistiller(student, self.oracle, synthesizer, cfg.distill,
                                           wave_size=self.wave_size(), seed=cfg.run.seed,
                                           precision=cfg.run.precision, collapse_cause=CAUSES["federation"])
        return student

    def wave_size(self) -> int:
        """``query.wave_size``, or the round's share of the budget (one exchange with each client per round)."""
        query, fed = self.cfg.query, self.cfg.federation
        return query.wave_size or math.ceil(self.cfg.distill.budget / (fed.num_rounds - query.first_round + 1))

    def public_pool(self) -> torch.Tensor:
        """FedDF's unlabeled public images, framed into ``query.public_box`` of the clients' frame if set."""
        from fedkd.distill.aedm import frame_images

        query = self.cfg.query
        public = load_dataset(query.public_dataset)
        channels, size = self.shape[0], self.shape[1]
        if query.public_box > size:
            raise ConfigError(f"query.public_box must be <= the clients' image size {size}, got {query.public_box}")
        if public.channels != channels or (public.image_size != size and not query.public_box):
            raise ConfigError(
                f"query.public_dataset = {query.public_dataset!r} has {public.channels}x{public.image_size}"
                f"x{public.image_size} images, the clients have {channels}x{size}x{size} "
                f"(set query.public_box to resize them into the clients' frame)"
            )
        images = public.tensors()[0]
        return frame_images(images, size, query.public_box) if query.public_box else images

    def budget_until(self, server_round: int) -> int:
        """Queries that may have been spent by the end of ``server_round``: the budget, spread evenly over the rounds
        from ``query.first_round`` on (none before it)."""
        first, last, budget = self.cfg.query.first_round, self.cfg.federation.num_rounds, self.cfg.distill.budget
        spending_rounds = max(0, server_round - first + 1)
        return min(budget, math.ceil(budget * spending_rounds / (last - first + 1)))

    def run_round(self, link: ClientLink, server_round: int, weights: dict[str, torch.Tensor]) -> RoundOutcome:
        """Train the sampled clients, distil from their answers up to this round's share of the budget, evaluate."""
        self.link, self.server_round = link, server_round
        self.partitions = sampled_partitions(self.cfg, server_round)
        trained = link.train(server_round, self.partitions)
        self.partitions = sorted(trained.label_counts)
        self.combiner.set_label_counts(trained.label_counts)

        distiller = self.distiller
        distiller.student.load_state_dict(weights)
        distiller.round = server_round
        cap = self.budget_until(server_round)
        losses = []
        while self.partitions and distiller.can_step(cap):
            losses.append(distiller.step(cap))
        if self.cfg.query.store_every_round and losses and not distiller.finished and distiller.store_training:
            distiller.train_on_store(replace(distiller.store_training, epochs=1, max_steps=0))
        server_metrics = {"train_loss": sum(losses) / len(losses), **distiller.answers.metrics()} if losses else {}
        if self.cfg.query.eval_ensemble and self.partitions:
            server_metrics.update(self._evaluate_ensemble(trained))
        return RoundOutcome(
            weights={k: v.detach().cpu().clone() for k, v in distiller.student.state_dict().items()},
            client_metrics=trained.metrics,
            server_metrics=server_metrics,
            queries=self.oracle.used,
            failures=link.traffic.failures,
            bytes_down=link.traffic.bytes_down,
            bytes_up=link.traffic.bytes_up,
        )

    def _answers(self, x: torch.Tensor, mode: str) -> dict[int, torch.Tensor]:
        if self.link is None:
            raise FedkdError("the federation was queried outside a round")
        codes, scale = encode_images(x.cpu())  # the wire carries CPU tensors
        answers = self.link.ask(self.server_round, self.partitions, codes, scale, mode)
        if not answers:
            raise FedkdError(f"round {self.server_round}: no client answered a query wave; "
                             f"{self.link.traffic.failures}")
        return {pid: expand_answers(a) for pid, a in sorted(answers.items())}

    def _ask_federation(self, x: torch.Tensor) -> torch.Tensor:
        """The oracle's teacher: the combined answer as log-probabilities (a label oracle keeps only the argmax)."""
        return torch.log(self.combiner(self._answers(x, self.oracle.mode)).clamp_min(1e-8))

    def _evaluate_ensemble(self, trained: TrainReplies) -> dict[str, float]:
        """The clients' combined answer on the test set (``test_acc/ensemble``) and the student's agreement with it;
        with ``query.eval_references`` also the references of ``fedkd.federation.references``."""
        answers = self._answers(self.x_test, self.cfg.distill.mode)
        reference = self.evaluation_combiner(proba=False)
        combined = reference(answers)
        student = self.distiller.student
        student.eval()
        with torch.no_grad():
            fidelity = accuracy_of_answers(combined, student(self.x_test).argmax(dim=1))
        metrics = {"test_acc/ensemble": accuracy_of_answers(combined, self.y_test), "fidelity": fidelity}
        learnt = self.combiner.aggregator is not None and self.combiner.tasks_seen
        if learnt or reference.method != self.combiner.method:  # the student was taught by another reading
            metrics["test_acc/ensemble_as_taught"] = accuracy_of_answers(self.combiner.read(answers), self.y_test)
        if self.cfg.query.eval_references:
            metrics.update(self._references(answers, trained))
        return metrics

    def evaluation_combiner(self, proba: bool) -> AnswerCombiner:
        """A fresh combiner of the run's kind: the clients' combined answer depends on the clients alone, not on the
        queries a method asked (a copy of an aggregator that learnt the clients' reliabilities on off-domain queries
        reads the test answers worse, and differently for every method). ``coverage``, a fixed reading that learns
        nothing, is judged as Dawid-Skene is: by a Dawid-Skene fitted on the test answers, so that a weaker reading
        cannot lift rho. Probabilities under either, as an aggregator reads labels only, are combined class-aware."""
        method = self.cfg.query.combine
        if method == COMBINE_COVERAGE:
            method = "ds"
        if proba and method not in (COMBINE_MEAN, COMBINE_CLASS_AWARE):
            method = COMBINE_CLASS_AWARE
        combiner = self._combiner(method, "evaluation-combiner")
        combiner.set_label_counts(self.combiner.label_counts)
        return combiner

    def _combiner(self, method: str, name: str) -> AnswerCombiner:
        query = self.cfg.query
        return AnswerCombiner(method, self.n_classes, seed=derive_seed(self.cfg.run.seed, name),
                              coverage_items=query.coverage_items, coverage_accuracy=query.coverage_accuracy)

    def _references(self, answers: dict[int, torch.Tensor], trained: TrainReplies) -> dict[str, float]:
        """Best single client, combined probabilities (absent where a client answers labels only) and one-shot
        FedAvg (absent unless every client sent weights that average meaningfully)."""
        metrics = {"test_acc/best_client": max(accuracy_of_answers(a, self.y_test) for a in answers.values())}
        if self.cfg.distill.mode != "proba":
            answers = self._answers(self.x_test, "proba")
        if all(a.dim() == 2 for a in answers.values()):
            combined = self.evaluation_combiner(proba=True)(answers)
            metrics["test_acc/ensemble_proba"] = accuracy_of_answers(combined, self.y_test)
        if trained.weights and sorted(trained.weights) == self.partitions:
            pids = sorted(trained.weights)
            averaged = average_weights([trained.weights[p] for p in pids], [trained.num_examples[p] for p in pids])
            model = build_model(self.cfg, self.shape, self.n_classes, client_architecture(self.cfg, pids[0]))
            model.load_state_dict(averaged)
            metrics["test_acc/fedavg_oneshot"] = evaluate_accuracy(model, self.x_test, self.y_test)
        return metrics

    # --- resume ---------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, distiller_state = self.distiller.state()
        combiner_tensors, combiner_skeleton = flatten(_to_tensors(self.combiner.state_dict()), "combiner")
        tensors.update(combiner_tensors)
        return tensors, {"distiller": distiller_state, "combiner": combiner_skeleton}

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.oracle.used = state["distiller"]["queries"]
        self.distiller.load_state(tensors, state["distiller"])
        self.combiner.load_state_dict(_to_numpy(unflatten(state["combiner"], tensors)))


def _to_tensors(obj: Any) -> Any:
    """Aggregator state (numpy arrays inside) in a form ``flatten`` can store."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {k: _to_tensors(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_tensors(v) for v in obj]
    return obj


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_numpy(v) for v in obj]
    return obj
