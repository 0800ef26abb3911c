"""The two centralized generative experiments that ``fedkd run`` can start: their config sections and runs.

``dark_knowledge``: load the shipped conditional GAN teacher, distil a smaller generator twice from the
same initialisation and input stream (dark knowledge vs. output only), and log ``fid_like/teacher``,
``fid_like/dark_knowledge``, ``fid_like/output_only`` (plus precision/recall, training times and, with
``eval.classifier``, ``class_acc/NAME``; with ``eval.ablations`` also ``fid_like/features_only`` and
``fid_like/adversarial_only``).

``single_fold``: load the shipped T-step diffusion teacher, train a single-fold student for each T' in
``student.steps`` and one chain of progressive students, at equal compute: a student with T/2^k steps
gets ``k * distill.steps_per_halving`` optimizer steps in either method. Logs ``fid_like/teacher@N`` for
the teacher sampled with N DDIM steps, ``fid_like/single_fold@T'`` and ``fid_like/progressive@T'``
(DDIM over the student's own steps), ``fid_like/teacher_ddpm@T`` and ``fid_like/single_fold_ddpm@T'``
(DDPM), and sampling milliseconds per image. All FID-like values use the same number of samples from
the same starting noise, so they compare with each other but not with published FIDs.

Both kinds checkpoint after each phase (the teacher's evaluation, each student, the progressive chain;
``fedkd.generative.phases``): ``--resume`` skips the finished phases and ends with the same metrics as an
uninterrupted run. Every row carries its phase as ``round``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fedkd.config import ExperimentConfig, ExperimentKind
from fedkd.errors import ConfigError
from fedkd.generative.artifacts import Provenance
from fedkd.generative.dark_knowledge import GeneratorDistillation
from fedkd.generative.phases import PhaseCheckpoints
from fedkd.runs import RunDir

FEATURE_NET = "pretrained/fid-digits-vgg_small"


@dataclass
class TeacherSection:
    """The shipped teacher to load and the dataset it must have been trained on."""

    path: str = ""
    dataset: str = "digits"


@dataclass
class EvalSection:
    """How quality is measured: the FID-like feature net, the number of samples, the training-log interval."""

    feature_net: str = FEATURE_NET
    samples: int = 1000
    log_every: int = 100
    grid: bool = True

    def validate(self) -> None:
        if self.samples < 10 or self.log_every < 1:
            raise ConfigError(f"eval.samples must be >= 10 and eval.log_every >= 1, got {self.samples}, "
                              f"{self.log_every}")


@dataclass
class GanEvalSection(EvalSection):
    """Also: ``ablations`` trains two more students, features only and adversarial term only; ``classifier``
    (a ``fedkd teacher train`` directory, independent of the feature net) logs ``class_acc/NAME``, the share
    of samples it assigns to the class they were conditioned on."""

    ablations: bool = False
    classifier: str = ""


@dataclass
class GanStudentSection:
    """The student generator: the teacher's architecture with these (smaller) generator widths."""

    widths: tuple[int, ...] = (32, 16, 8)


@dataclass
class GanTeacherSection(TeacherSection):
    path: str = "pretrained/gan-digits"


@dataclass
class DiffusionTeacherSection(TeacherSection):
    path: str = "pretrained/prior-digits"


@dataclass
class DiffusionStudentSection:
    """The students: their UNet (``widths``, ``norm_groups``) and the step counts T' to distil (T' divides T)."""

    widths: tuple[int, ...] = (8, 16)
    norm_groups: int = 4
    steps: tuple[int, ...] = (8,)

    def validate(self) -> None:
        if not self.steps or min(self.steps) < 1:
            raise ConfigError(f"student.steps must list step counts >= 1, got {list(self.steps)}")


@dataclass
class DiffusionDistillSection:
    """Training of both methods; ``steps_per_halving`` is the unit of compute (see the module docstring)."""

    steps_per_halving: int = 400
    batch_size: int = 64
    lr: float = 5e-3
    feature_weight: float = 0.1

    def validate(self) -> None:
        if self.steps_per_halving < 1 or self.batch_size < 1 or self.lr <= 0 or self.feature_weight < 0:
            raise ConfigError(f"distill needs steps_per_halving, batch_size >= 1, lr > 0, feature_weight >= 0, "
                              f"got {self}")


@dataclass
class DiffusionEvalSection(EvalSection):
    """Also: the DDIM step counts at which the teacher is measured (the x-axis of quality vs. steps)."""

    teacher_steps: tuple[int, ...] = (64, 8)


class _Quality:
    """Logs FID-like, precision, recall (and with a classifier, class accuracy) of one image set under a
    variant name, with its sampling time; every row carries the run phase as its ``round``."""

    def __init__(self, rundir: RunDir, feature_net: str, dataset: str, classifier: str = "",
                 device: str = "cpu") -> None:
        from fedkd.metrics import FidLike

        self.rundir = rundir
        self.fid = FidLike.from_teacher(feature_net, dataset=dataset, device=device)
        self.classifier = None
        if classifier:
            from fedkd.generative.artifacts import resolve_path
            from fedkd.teachers import load_teacher

            self.classifier = load_teacher(resolve_path(classifier), dataset=dataset).model.to(device)

    def log(self, name: str, sample: Callable[[], torch.Tensor], phase: int,
            labels: torch.Tensor | None = None) -> torch.Tensor:
        """Sample, measure and log; ``labels`` are the classes the samples were conditioned on, if any."""
        from fedkd.metrics import accuracy
        from fedkd.train import predict_logits

        start = time.perf_counter()
        with torch.no_grad():
            images = sample()
        elapsed = time.perf_counter() - start
        precision, recall = self.fid.precision_recall(images)
        self.rundir.log(f"fid_like/{name}", self.fid(images), round=phase)
        self.rundir.log(f"precision/{name}", precision, round=phase)
        self.rundir.log(f"recall/{name}", recall, round=phase)
        if self.classifier is not None and labels is not None:
            self.rundir.log(f"class_acc/{name}", accuracy(predict_logits(self.classifier, images), labels),
                            round=phase)
        self.rundir.log(f"sample_ms_per_image/{name}", 1000 * elapsed / len(images), round=phase)
        return images


def run_dark_knowledge(cfg: ExperimentConfig, rundir: RunDir) -> None:
    from fedkd.generative.dark_knowledge import distill_generator
    from fedkd.generative.grids import save_grids
    from fedkd.models.conditional_gan import ConditionalGenerator, load_gan
    from fedkd.seeding import seed_torch, torch_generator

    phases = PhaseCheckpoints(rundir)
    if phases.complete:
        return
    seed, device = cfg.run.seed, cfg.run.device
    teacher, discriminator = load_gan(cfg.teacher.path, expect={"dataset": cfg.teacher.dataset})
    teacher, discriminator = teacher.to(device), discriminator.to(device)
    quality = _Quality(rundir, cfg.eval.feature_net, cfg.teacher.dataset, cfg.eval.classifier, device)
    z = torch.randn(cfg.eval.samples, teacher.config.z_dim, generator=torch_generator(seed, "eval", "z")).to(device)
    y = (torch.arange(cfg.eval.samples) % teacher.config.n_classes).to(device)
    student_config = dataclasses.replace(teacher.config, widths=cfg.student.widths)
    if phases.is_done(0):
        with torch.no_grad():
            grids = {"teacher": teacher(z, y)}
    else:
        grids = {"teacher": quality.log("teacher", lambda: teacher(z, y), 0, y)}
        rundir.log("params/teacher", _count(teacher), round=0)
        rundir.log("params/student", _count(ConditionalGenerator(student_config)), round=0)
        phases.finish(0)
    variants = {"dark_knowledge": cfg.distill, "output_only": cfg.distill.output_only()}
    if cfg.eval.ablations:
        variants["features_only"] = dataclasses.replace(cfg.distill, adversarial_weight=0.0)
        variants["adversarial_only"] = dataclasses.replace(cfg.distill, feature_weight=0.0)
    for phase, (name, settings) in enumerate(variants.items(), start=1):
        seed_torch(seed, "student", "init")
        student = ConditionalGenerator(student_config).to(device)
        if phases.is_done(phase):
            student.load_state_dict(phases.weights(name))
            with torch.no_grad():
                grids[name] = student.eval()(z, y)
            continue
        start = time.perf_counter()
        distill_generator(teacher, student, settings, torch_generator(seed, "distill", device=device), discriminator,
                          on_log=lambda step, loss, n=name, r=phase: rundir.log(f"train_loss/{n}", loss, round=r,
                                                                                step=step),
                          log_every=cfg.eval.log_every, precision=cfg.run.precision)
        rundir.log(f"train_seconds/{name}", time.perf_counter() - start, round=phase)
        grids[name] = quality.log(name, lambda s=student: s(z, y), phase, y)
        phases.finish(phase, {name: student})
    if cfg.eval.grid:
        save_grids({k: v[:50] for k, v in grids.items()}, rundir.path / "samples.png")
    phases.finish(len(variants), complete=True)


def run_single_fold(cfg: ExperimentConfig, rundir: RunDir) -> None:
    from fedkd.data import load_dataset
    from fedkd.generative.grids import save_grids
    from fedkd.generative.progressive import progressive_distill
    from fedkd.generative.single_fold import DiffusionDistillation, fold_student, single_fold_distill
    from fedkd.models.diffusion import DiffusionModel, load_prior, save_prior
    from fedkd.seeding import seed_torch, torch_generator

    phases = PhaseCheckpoints(rundir)
    if phases.complete:
        return
    seed, device = cfg.run.seed, cfg.run.device
    teacher = load_prior(cfg.teacher.path, expect={"dataset": cfg.teacher.dataset}).to(device)
    total = teacher.num_steps
    halvings = {t: _halvings(total, t) for t in cfg.student.steps}
    for n in cfg.eval.teacher_steps:
        teacher.sampling_steps(n)  # raises a ConfigError naming the allowed range
    split = teacher.meta["training"]
    train, _ = load_dataset(cfg.teacher.dataset).split(split["test_fraction"], split["split_seed"])
    x0, _ = train.tensors(device)
    quality = _Quality(rundir, cfg.eval.feature_net, cfg.teacher.dataset, device=device)
    shape = (cfg.eval.samples, teacher.config.channels, teacher.config.image_size, teacher.config.image_size)
    x_T = torch.randn(shape, generator=torch_generator(seed, "eval", "x_T")).to(device)  # the same on every device

    def ddpm_noise() -> torch.Generator:
        """The same DDPM noise stream for every model, so their samples differ only by the model."""
        return torch_generator(seed, "eval", "ddpm", device=device)

    grids = {}
    for n in sorted(set(cfg.eval.teacher_steps) | set(cfg.student.steps), reverse=True):
        if phases.is_done(0):
            with torch.no_grad():
                grids[f"teacher@{n}"] = teacher.sample(x_T, n)
        else:
            grids[f"teacher@{n}"] = quality.log(f"teacher@{n}", lambda n=n: teacher.sample(x_T, n), 0)
    if not phases.is_done(0):
        quality.log(f"teacher_ddpm@{total}", lambda: teacher.sample(x_T, sampler="ddpm", generator=ddpm_noise()), 0)
        phases.finish(0)
    architecture = {"widths": cfg.student.widths, "norm_groups": cfg.student.norm_groups}
    models = rundir.path / "models"
    phase = 0
    for steps, k in sorted(halvings.items(), reverse=True):
        phase += 1
        seed_torch(seed, "student", "init")
        student = fold_student(teacher, total // steps, **architecture).to(device)
        name = f"single_fold@{steps}"
        if phases.is_done(phase):
            student.load_state_dict(phases.weights(name))
            with torch.no_grad():
                grids[name] = student.eval().sample(x_T, steps=student.num_steps)
            continue
        settings = DiffusionDistillation(round(k * cfg.distill.steps_per_halving), cfg.distill.batch_size,
                                         cfg.distill.lr)
        start = time.perf_counter()
        single_fold_distill(teacher, student, x0, settings, torch_generator(seed, "distill", name, device=device),
                            cfg.distill.feature_weight, log_every=cfg.eval.log_every,
                            on_log=lambda step, loss, n=name, r=phase: rundir.log(f"train_loss/{n}", loss,
                                                                                  round=r, step=step),
                            precision=cfg.run.precision)
        _log_compute(rundir, name, phase, settings.steps, settings.steps, time.perf_counter() - start)
        grids[name] = quality.log(name, lambda s=student: s.sample(x_T, steps=s.num_steps), phase)
        quality.log(f"single_fold_ddpm@{steps}",
                    lambda s=student: s.sample(x_T, sampler="ddpm", generator=ddpm_noise()), phase)
        save_prior(student, models / f"single_fold-{steps}", _provenance(cfg, name))
        phases.finish(phase, {name: student})
    rounds = max((k for k in halvings.values() if k == int(k)), default=0)
    if rounds:
        phase += 1  # the progressive chain is one phase: its students train from each other
        seed_torch(seed, "student", "init")
        per_round = DiffusionDistillation(cfg.distill.steps_per_halving, cfg.distill.batch_size, cfg.distill.lr)
        clock = {"round_start": time.perf_counter(), "trained": 0.0}  # training time only, evaluation excluded

        def finish_round(r: int, student: DiffusionModel) -> None:
            clock["trained"] += time.perf_counter() - clock["round_start"]
            name = f"progressive@{student.num_steps}"
            _log_compute(rundir, name, phase, r * per_round.steps, 2 * r * per_round.steps, clock["trained"])
            grids[name] = quality.log(name, lambda: student.sample(x_T, steps=student.num_steps), phase)
            save_prior(student, models / f"progressive-{student.num_steps}", _provenance(cfg, name))
            clock["round_start"] = time.perf_counter()

        progressive_distill(
            teacher, x0, per_round, int(rounds), torch_generator(seed, "distill", "progressive", device=device),
            architecture,
            log_every=cfg.eval.log_every, on_round=finish_round,
            on_log=lambda r, step, loss: rundir.log(f"train_loss/progressive@{total >> r}", loss, round=phase,
                                                    step=(r - 1) * per_round.steps + step),
            precision=cfg.run.precision)
    if cfg.eval.grid:
        save_grids({k: v[:40] for k, v in grids.items()}, rundir.path / "samples.png", nrow=8)
    phases.finish(phase, complete=True)


def _halvings(total: int, steps: int) -> float:
    """log2(T / T'): the compute units a T'-step student gets (whole for the progressive chain's step counts)."""
    if steps < 1 or total % steps or steps == total:
        raise ConfigError(f"student.steps: {steps} must divide the teacher's {total} steps and be smaller")
    return math.log2(total // steps)


def _log_compute(rundir: RunDir, name: str, phase: int, optimizer_steps: int, teacher_evals: int,
                 seconds: float) -> None:
    rundir.log(f"train_steps/{name}", optimizer_steps, round=phase)
    rundir.log(f"teacher_evals/{name}", teacher_evals, round=phase)
    rundir.log(f"train_seconds/{name}", seconds, round=phase)


def _provenance(cfg: ExperimentConfig, name: str) -> Provenance:
    return Provenance(command=f"fedkd run simulations/single_fold.toml  # {name}", dataset=cfg.teacher.dataset,
                      seed=cfg.run.seed, training=cfg.to_dict()["distill"])


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


DARK_KNOWLEDGE = ExperimentKind(
    sections={"teacher": GanTeacherSection, "student": GanStudentSection, "distill": GeneratorDistillation,
              "eval": GanEvalSection},
    run=run_dark_knowledge,
    description="distil a conditional GAN into a smaller generator: dark knowledge vs. output only (FID-like)",
)

SINGLE_FOLD = ExperimentKind(
    sections={"teacher": DiffusionTeacherSection, "student": DiffusionStudentSection,
              "distill": DiffusionDistillSection, "eval": DiffusionEvalSection},
    run=run_single_fold,
    description="single-fold vs. progressive diffusion distillation at equal compute (FID-like vs. steps)",
)
