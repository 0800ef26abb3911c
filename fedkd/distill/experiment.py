"""The ``blackbox`` experiment kind: distil a saved teacher through a query oracle, logged by queries spent.

``fedkd run simulations/tandemgan_mnist.toml`` loads the teacher named in ``[teacher]``, wraps it in a
``ModelOracle`` (``[distill] mode`` and ``budget``), builds the query source named by
``[distill] method`` (``tandemgan``, ``dfme``, ``random``, ``real`` or ``aedm``) and runs the shared loop. It logs
``teacher_acc`` once, then every ``eval_every`` queries ``queries``, ``test_acc`` (the student on the
teacher's test split, which neither the teacher nor the student trains on), ``fidelity`` (agreement
with the teacher's labels there), ``train_loss``, and ``answer_entropy`` (nats) and ``answer_top_share`` of the
teacher's answers so far (``fedkd.distill.histogram``; a one-line warning says when they collapse onto one
class), and at the end the time split
``seconds/teacher``, ``seconds/generator``, ``seconds/student`` with ``queries_per_second`` and
``student_steps_per_second``. The teacher's test-split labels for ``fidelity`` are computed once
from the model directly: evaluation is the harness's, not the distiller's, and spends no queries.

Checkpoints (student, generator, optimizers, random-stream states, query count) are written every
``checkpoint_every`` queries and at the end; ``--resume`` continues from the last one and ends with the
same metrics as an uninterrupted run. A stop request (SIGINT, SIGTERM) ends the loop after the iteration
in progress. A budget that does not pay for one iteration is a ``ConfigError`` before anything is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from fedkd.config import DataSection, ExperimentConfig, ExperimentKind
from fedkd.distill.aedm import AEDMConfig
from fedkd.distill.dfme import DFMEConfig
from fedkd.distill.loop import BlackBoxDistiller, DistillConfig, QuerySynthesizer
from fedkd.distill.tandemgan import TandemGANConfig
from fedkd.errors import ConfigError

if TYPE_CHECKING:
    from fedkd.runs import RunDir


@dataclass
class TeacherSection:
    """Which saved teacher the oracle answers with (a ``fedkd teacher train --out`` directory)."""

    path: str = "teachers/mnist5k-lenet5"


def build_synthesizer(cfg: ExperimentConfig, channels: int, image_size: int, dataset: str,
                      pool: Callable[[], torch.Tensor]) -> QuerySynthesizer:
    """The query source ``cfg.distill.method`` names, seeded from the run seed: the one factory of centralized and
    federated runs. ``dataset`` is the teacher's (or the clients') data, which an AEDM prior must not have learnt;
    ``pool()`` gives the unlabeled images of ``real`` (called only for that method). The source, its generator
    and its random streams live on ``run.device``; AEDM's forward passes run in ``run.precision``."""
    from fedkd.distill.aedm import AEDM, load_aedm_prior, require_no_fresh_student_batches
    from fedkd.distill.baselines import RandomNoise, RealData
    from fedkd.distill.dfme import DFME
    from fedkd.distill.tandemgan import TandemGAN

    method, seed, device = cfg.distill.method, cfg.run.seed, cfg.run.device
    if method == "tandemgan":
        return TandemGAN(cfg.tandemgan, channels, image_size, seed, device)
    if method == "dfme":
        return DFME(cfg.dfme, channels, image_size, seed, device)
    if method == "random":
        return RandomNoise(channels, image_size, seed, device)
    if method == "aedm":
        require_no_fresh_student_batches(cfg.distill.student_steps)
        return AEDM(cfg.aedm, load_aedm_prior(cfg.aedm, dataset, channels), image_size, seed, device,
                    cfg.run.precision)
    return RealData(pool(), seed, device)


def evaluate_student(student: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     teacher_labels: torch.Tensor) -> dict[str, float]:
    """``test_acc`` against the true labels and ``fidelity`` against the teacher's labels."""
    from fedkd.train import predict_logits

    predicted = predict_logits(student, x).argmax(1)
    return {"test_acc": float((predicted == y).float().mean()),
            "fidelity": float((predicted == teacher_labels).float().mean())}


def run_blackbox(cfg: ExperimentConfig, rundir: RunDir) -> None:
    """Run one black-box distillation as configured; see the module docstring for what is logged."""
    from fedkd.generative.artifacts import resolve_path
    from fedkd.models import build_classifier
    from fedkd.oracle import ModelOracle
    from fedkd.seeding import seed_torch
    from fedkd.stopping import check_stop
    from fedkd.teachers import load_teacher, teacher_splits
    from fedkd.train import predict_logits

    settings: DistillConfig = cfg.distill
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = cfg.run.device
    teacher = load_teacher(resolve_path(cfg.teacher.path), dataset=cfg.data.dataset)
    teacher.model.to(device)
    info = teacher.info
    if cfg.data.test_fraction != info.test_fraction:
        raise ConfigError(f"data.test_fraction = {cfg.data.test_fraction} differs from the teacher's split "
                          f"({info.test_fraction}); the student must be measured on the teacher's test split")
    train, test = teacher_splits(info, cfg.data.path)
    x_test, y_test = test.tensors(device)
    teacher_labels = predict_logits(teacher.model, x_test).argmax(1)

    seed_torch(cfg.run.seed, "student", "init")
    student = build_classifier(settings.student_model, info.channels, info.image_size, info.n_classes).to(device)
    checkpoint = rundir.load_checkpoint()
    if checkpoint is not None and checkpoint.state.get("complete"):
        return
    oracle = ModelOracle(teacher.model, mode=settings.mode, budget=settings.budget,
                         used=0 if checkpoint is None else checkpoint.state["queries"])
    synthesizer = build_synthesizer(cfg, info.channels, info.image_size, info.dataset, lambda: train.tensors()[0])
    distiller = BlackBoxDistiller(student, oracle, synthesizer, settings, seed=cfg.run.seed,
                                  precision=cfg.run.precision)
    if checkpoint is None and not distiller.can_step():
        raise ConfigError(f"distill.budget = {settings.budget} is smaller than one iteration of {settings.method!r} "
                          f"({distiller.iteration_cost} queries at distill.batch_size = {settings.batch_size}, "
                          f"distill.student_steps = {settings.student_steps}); raise the budget")

    def evaluate() -> None:
        step, used = distiller.iterations, oracle.used
        rundir.log("queries", used, step=step, queries=used)
        measured = {**evaluate_student(student, x_test, y_test, teacher_labels), **distiller.answers.metrics()}
        for metric, value in measured.items():
            rundir.log(metric, value, step=step, queries=used)

    def save(complete: bool) -> None:
        tensors, state = distiller.state()
        rundir.save_checkpoint(tensors, {**state, "complete": complete}, step=distiller.iterations)

    if checkpoint is None:
        rundir.log("teacher_acc", float((teacher_labels == y_test).float().mean()), step=0, queries=0)
        evaluate()
    else:
        distiller.load_state(checkpoint.tensors, checkpoint.state)

    spent = [oracle.used]

    def on_iteration(d: BlackBoxDistiller, loss: float) -> None:
        check_stop()
        used, before = d.oracle.used, spent[0]
        spent[0] = used
        if used // settings.eval_every > before // settings.eval_every or not d.can_step():
            rundir.log("train_loss", loss, step=d.iterations, queries=used)
            evaluate()
        if used // settings.checkpoint_every > before // settings.checkpoint_every and d.can_step():
            save(complete=False)

    distiller.run(on_iteration, desc=f"{settings.method}/{settings.mode}")
    _log_speed(rundir, distiller)
    save(complete=True)


def _log_speed(rundir: RunDir, distiller: BlackBoxDistiller) -> None:
    step, used = distiller.iterations, distiller.oracle.used
    seconds = distiller.seconds
    total = sum(seconds.values()) or float("nan")
    for part, value in seconds.items():
        rundir.log(f"seconds/{part}", value, step=step, queries=used)
    for part, value in getattr(distiller.synthesizer, "seconds", {}).items():  # e.g. AEDM's steer / offline split
        rundir.log(f"seconds/{part}", value, step=step, queries=used)
    rundir.log("queries_per_second", used / total, step=step, queries=used)
    rundir.log("student_steps_per_second", distiller.student_updates / total, step=step, queries=used)


EXPERIMENT = ExperimentKind(
    sections={"data": DataSection, "teacher": TeacherSection, "distill": DistillConfig,
              "tandemgan": TandemGANConfig, "dfme": DFMEConfig, "aedm": AEDMConfig},
    run=run_blackbox,
    description="black-box data-free distillation of a saved teacher through a query oracle "
                "(TandemGAN, DFME, AEDM, random noise, real-data KD)",
)
