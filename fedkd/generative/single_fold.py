"""Single-fold diffusion distillation: a T' = T/c-step student learns a T-step teacher's noise predictions.

The student keeps every c-th of the teacher's steps (or any increasing subsequence of them), so its
schedule is ``alpha_bar'_t = alpha_bar_{c t}`` (1-based t = 1..T'), and it trains in one fold, straight
from the teacher, on

    x_0 ~ data,  t' ~ U{1..T'},  eps ~ N(0, I),  x_t' = sqrt(alpha_bar'_t') x_0 + sqrt(1 - alpha_bar'_t') eps
    L = ||eps_s(x_t', t') - eps_t(x_t', c t')||_1 + beta * ||A(h_s) - h_t||_1

with ``h`` the last hidden feature maps of the two UNets and ``A`` the 1x1 adapter of
``fedkd.generative.losses``. The student then samples with DDPM over its own T' steps or DDIM over any
number of them (``DiffusionModel.sample``). Each optimizer step costs one teacher evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedkd.errors import ConfigError
from fedkd.generative.losses import ChannelAdapter, feature_l1, minimise
from fedkd.models.diffusion import DiffusionModel


@dataclass
class DiffusionDistillation:
    """Optimisation settings shared by single-fold and progressive distillation (``steps`` per student/round)."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 5e-3

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"distillation needs steps, batch_size >= 1 and lr > 0, "
                              f"got {self.steps}, {self.batch_size}, {self.lr}")


def fold_student(teacher: DiffusionModel, fold: int | Sequence[int], **architecture: object) -> DiffusionModel:
    """A fresh student on every ``fold``-th teacher step (int) or on the teacher step positions ``fold`` (list).

    ``architecture`` overrides the teacher's (``widths=(8, 16), norm_groups=4`` for a smaller UNet).
    """
    schedule = teacher.schedule.fold(fold) if isinstance(fold, int) else teacher.schedule.subsequence(fold)
    return teacher.with_steps(schedule, **architecture)


def single_fold_distill(teacher: DiffusionModel, student: DiffusionModel, x0: torch.Tensor,
                        settings: DiffusionDistillation, generator: torch.Generator, feature_weight: float = 1.0,
                        on_log: Callable[[int, float], None] | None = None, log_every: int = 100,
                        precision: str = "fp32") -> float:
    """Train ``student`` (in place) on the loss above; returns the mean loss of the last ``log_every`` steps.

    ``x0`` are the training images, ``feature_weight`` is beta; ``on_log(step, mean_loss)`` is called every
    ``log_every`` steps. The networks' forward passes run in ``precision`` (``fedkd.precision``).
    """
    settings.validate()
    if feature_weight < 0:
        raise ConfigError(f"feature_weight must be >= 0, got {feature_weight}")
    teacher_pos = teacher.schedule.positions_of(student.schedule.timesteps).to(x0.device)
    adapter = ChannelAdapter(student.config.widths[0], teacher.config.widths[0]).to(x0.device)

    def loss_fn() -> torch.Tensor:
        x_t, pos = noisy_batch(student, x0, settings.batch_size, generator)
        with torch.no_grad():
            eps_teacher, h_teacher = teacher.eps_and_features(x_t, teacher_pos[pos])
        eps_student, h_student = student.eps_and_features(x_t, pos)
        loss = F.l1_loss(eps_student.float(), eps_teacher.float())
        if feature_weight > 0:
            loss = loss + feature_weight * feature_l1(h_student, h_teacher, adapter)
        return loss

    teacher.eval()
    student.train()
    mean_loss = minimise(loss_fn, [*student.parameters(), *adapter.parameters()], steps=settings.steps,
                         lr=settings.lr, desc=f"single-fold T'={student.num_steps}", on_log=on_log,
                         log_every=log_every, precision=precision)
    student.eval()
    return mean_loss


def noisy_batch(model: DiffusionModel, x0: torch.Tensor, batch_size: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, step) for a random batch of ``x0``, steps uniform over ``model``'s own steps and fresh noise."""
    x = x0[torch.randint(0, len(x0), (batch_size,), generator=generator, device=generator.device)]
    pos = torch.randint(0, model.num_steps, (batch_size,), generator=generator, device=generator.device)
    return model.add_noise(x, pos, torch.randn(x.shape, generator=generator, device=generator.device)), pos
