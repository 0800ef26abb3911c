"""Data-free federated distillation: the server never sees client data or weights, only answers to queries.

Each round, every client takes in its new label chunk, cleans it with its aggregator and trains its own model
(which may differ in architecture from the others'). The server then runs the same black-box distillation
loop as a centralized run (``fedkd.distill``), with one difference: its oracle's teacher is the federation.
Each oracle call sends the query batch to all clients as a Flower ``query`` message, and the answers (labels
only, or probabilities) are combined (``fedkd.federation.answers``) into the federation's answer. The query
budget (``distill.budget``, spread evenly over the rounds from ``query.first_round`` on) is counted by the
oracle, exactly as centralized.

* ``fedtandem``: queries from a TandemGAN generator (exploration + exploitation), no data at all.
* ``fedaedm``: queries decoded from a diffusion prior trained on public data, its input noise steered to where
  the student is unsure (AEDM, ``[aedm]`` settings); answers are kept and the student trains offline on all of
  them once the budget is spent.
* ``feddf``: queries drawn from unlabeled public data (``query.public_dataset``), FedDF-style ensemble
  distillation through answers only.

After each round the clients also answer the test images, outside the budget (evaluation, not training):
``test_acc/ensemble`` is the accuracy of their combined answer, the upper reference for the student, and
``fidelity`` the student's agreement with it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from flwr.app import ArrayRecord, MessageType, RecordDict
from flwr.serverapp import Grid

from clients.protocol import ANSWERS, CONFIG, LABEL_COUNTS, METRICS, QUERIES, QUERY_MODE, TENSOR, instruction_config
from fedkd.config import ExperimentConfig
from fedkd.data import load_dataset
from fedkd.distill.loop import BlackBoxDistiller, QuerySynthesizer
from fedkd.distill.state import flatten, unflatten
from fedkd.errors import ConfigError, FedkdError
from fedkd.federation.answers import AnswerCombiner
from fedkd.federation.data import train_test
from fedkd.models import build_classifier
from fedkd.oracle import ModelOracle
from fedkd.seeding import derive_seed
from strategies.base import FederatedStrategy, RoundOutcome
from strategies.messaging import broadcast, reply_metrics


class QueryDistillation(FederatedStrategy):
    """Distil the clients' knowledge into a global student through queries only (see the module docstring)."""

    method: ClassVar[str]

    def __init__(self, cfg: ExperimentConfig) -> None:
        super().__init__(cfg)
        if cfg.distill.method != self.method:
            raise ConfigError(
                f"federation.strategy = {cfg.federation.strategy!r} synthesizes queries with {self.method!r}; "
                f"set distill.method = {self.method!r} (got {cfg.distill.method!r})"
            )
        if cfg.run.device != "cpu":
            raise ConfigError(
                f"data-free strategies run the distiller on the CPU for now; got run.device = {cfg.run.device!r}"
            )
        if cfg.query.first_round > cfg.federation.num_rounds:
            raise ConfigError(
                f"query.first_round = {cfg.query.first_round} is after the last round "
                f"(federation.num_rounds = {cfg.federation.num_rounds}); no query would be sent"
            )
        _, test = train_test(cfg)
        self.shape, self.n_classes = (test.channels, test.image_size, test.image_size), test.n_classes
        self.x_test, self.y_test = test.tensors()
        self.combiner = AnswerCombiner(cfg.query.combine, self.n_classes, seed=derive_seed(cfg.run.seed, "combiner"))
        self.grid: Grid | None = None
        self.server_round = 0
        self.failures: list[str] = []
        self.label_counts: dict[int, list[int]] = {}

    def build_global_model(self, data_shape: tuple[int, int, int], n_classes: int) -> torch.nn.Module:
        student = build_classifier(self.cfg.distill.student_model, data_shape[0], data_shape[1], n_classes)
        self.oracle = ModelOracle(self._ask_federation, mode=self.cfg.distill.mode, budget=self.cfg.distill.budget)
        self.distiller = BlackBoxDistiller(student, self.oracle, self.synthesizer(), self.cfg.distill)
        return student

    def synthesizer(self) -> QuerySynthesizer:
        """The query source this strategy distils with (built once; it learns across rounds)."""
        raise NotImplementedError

    # --- one round ------------------------------------------------------------------------------

    def run_round(self, grid: Grid, server_round: int, weights: dict[str, torch.Tensor]) -> RoundOutcome:
        self.grid, self.server_round, self.failures = grid, server_round, []
        fed = self.cfg.federation
        trained = broadcast(grid, MessageType.TRAIN, RecordDict({CONFIG: self._config()}), fed.round_timeout)
        self.failures += trained.failures
        client_metrics = {pid: reply_metrics(msg) for pid, msg in trained.replies.items()}
        self.label_counts = {pid: list(msg.content[METRICS][LABEL_COUNTS]) for pid, msg in trained.replies.items()}
        self.combiner.set_label_counts(self.label_counts)

        self.distiller.student.load_state_dict(weights)
        cap = self.budget_until(server_round)
        losses = []
        while self.distiller.can_step() and self.oracle.used + self.distiller.iteration_cost <= cap:
            losses.append(self.distiller.step())
        server_metrics = {"train_loss": sum(losses) / len(losses)} if losses else {}
        if self.cfg.query.eval_ensemble:
            server_metrics.update(self._evaluate_ensemble())
        return RoundOutcome(
            weights={k: v.detach().clone() for k, v in self.distiller.student.state_dict().items()},
            client_metrics=client_metrics,
            server_metrics=server_metrics,
            queries=self.oracle.used,
            failures=self.failures,
        )

    def budget_until(self, server_round: int) -> int:
        """Queries that may have been spent by the end of ``server_round``: the budget, spread evenly over the rounds
        from ``query.first_round`` on (none before it)."""
        first, last, budget = self.cfg.query.first_round, self.cfg.federation.num_rounds, self.cfg.distill.budget
        spending_rounds = max(0, server_round - first + 1)
        return min(budget, math.ceil(budget * spending_rounds / (last - first + 1)))

    def _config(self, mode: str = "") -> Any:
        config = instruction_config(self.cfg, self.server_round)
        config[QUERY_MODE] = mode
        return config

    def _answers(self, x: torch.Tensor, mode: str) -> dict[int, torch.Tensor]:
        if self.grid is None:
            raise FedkdError("the federation was queried outside a round")
        content = RecordDict({CONFIG: self._config(mode), QUERIES: ArrayRecord.from_torch_state_dict({TENSOR: x})})
        asked = broadcast(self.grid, MessageType.QUERY, content, self.cfg.federation.round_timeout)
        self.failures += asked.failures
        if not asked.replies:
            raise FedkdError(f"round {self.server_round}: no client answered a query batch; {asked.failures}")
        return {pid: msg.content[ANSWERS].to_torch_state_dict()[TENSOR] for pid, msg in asked.replies.items()}

    def _ask_federation(self, x: torch.Tensor) -> torch.Tensor:
        """The oracle's teacher: the combined answer as log-probabilities (a label oracle keeps only the argmax)."""
        return torch.log(self.combiner(self._answers(x, self.oracle.mode)).clamp_min(1e-8))

    def _evaluate_ensemble(self) -> dict[str, float]:
        method = "class_aware" if self.cfg.query.combine == "class_aware" else "mean"
        reference = AnswerCombiner(method, self.n_classes)
        reference.set_label_counts(self.label_counts)
        ensemble = reference(self._answers(self.x_test, self.cfg.distill.mode))
        predicted = ensemble.argmax(dim=1)
        student = self.distiller.student
        student.eval()
        with torch.no_grad():
            agreement = (student(self.x_test).argmax(dim=1) == predicted).float().mean()
        return {"test_acc/ensemble": float((predicted == self.y_test).float().mean()), "fidelity": float(agreement)}

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


class FedTandem(QueryDistillation):
    """Data-free: TandemGAN's generator makes the queries (``[tandemgan]`` settings)."""

    method = "tandemgan"

    def synthesizer(self) -> QuerySynthesizer:
        from fedkd.distill.tandemgan import TandemGAN

        return TandemGAN(self.cfg.tandemgan, self.shape[0], self.shape[1], derive_seed(self.cfg.run.seed, "tandemgan"))


class FedAEDM(QueryDistillation):
    """Data-free with a public-data prior: AEDM-steered diffusion samples make the queries (``[aedm]`` settings).

    The prior must not have learnt the clients' data source (``load_aedm_prior`` refuses it), so the server
    still holds no private data, only a generative model of related public data.
    """

    method = "aedm"

    def synthesizer(self) -> QuerySynthesizer:
        from fedkd.distill.aedm import AEDM, load_aedm_prior, require_no_fresh_student_batches

        require_no_fresh_student_batches(self.cfg.distill.student_steps)
        prior = load_aedm_prior(self.cfg.aedm, self.cfg.data.dataset, self.shape[0])
        return AEDM(self.cfg.aedm, prior, self.shape[1], derive_seed(self.cfg.run.seed, "aedm"))


class FedDF(QueryDistillation):
    """Ensemble distillation on unlabeled public data (``query.public_dataset``), through answers only."""

    method = "real"

    def synthesizer(self) -> QuerySynthesizer:
        from fedkd.distill.aedm import frame_images
        from fedkd.distill.baselines import RealData

        query = self.cfg.query
        public = load_dataset(query.public_dataset)
        channels, size = self.shape[0], self.shape[1]
        if query.public_box > size:
            raise ConfigError(f"query.public_box must be <= the clients' image size {size}, got {query.public_box}")
        if public.channels != channels or (public.image_size != size and not query.public_box):
            raise ConfigError(
                f"query.public_dataset = {query.public_dataset!r} has {public.channels}x{public.image_size}"
                f"x{public.image_size} images, the clients have {channels}x{size}x{self.shape[2]} "
                f"(set query.public_box to resize them into the clients' frame)"
            )
        images = public.tensors()[0]
        if query.public_box:
            images = frame_images(images, size, query.public_box)
        return RealData(images, derive_seed(self.cfg.run.seed, "public-data"))


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
