"""Generator distillation with dark knowledge: a small conditional generator learns from a large one, data-free.

Teacher ``G_t`` (frozen) and student ``G_s`` see the same noise and labels, z ~ N(0, I), y uniform, and
the student minimises

    L = ||G_s(z, y) - G_t(z, y)||_1  +  beta * ||A(h_s) - h_t||_1  -  lambda * D_t(G_s(z, y), y)

where ``h`` are the last hidden feature maps (the dark knowledge: what the teacher computes before it
commits to pixels), ``A`` a 1x1 adapter when the student is narrower (``fedkd.generative.losses``) and
``D_t`` the teacher's frozen discriminator (the hinge generator loss). With ``beta = lambda = 0`` this is
the output-only baseline (Aguinaldo et al., 2019). No real image is used: the only inputs are the
teacher's networks and a random stream, which ``distill_generator``'s signature makes explicit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fedkd.errors import ConfigError
from fedkd.generative.losses import ChannelAdapter, feature_l1, minimise
from fedkd.models.conditional_gan import ConditionalDiscriminator, ConditionalGenerator


@dataclass
class GeneratorDistillation:
    """Settings of one distillation run; ``feature_weight`` is beta and ``adversarial_weight`` lambda above."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    feature_weight: float = 1.0
    adversarial_weight: float = 0.05

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"distill.steps and distill.batch_size must be >= 1 and distill.lr > 0, got "
                              f"{self.steps}, {self.batch_size}, {self.lr}")
        if self.feature_weight < 0 or self.adversarial_weight < 0:
            raise ConfigError(f"distill.feature_weight and distill.adversarial_weight must be >= 0, got "
                              f"{self.feature_weight}, {self.adversarial_weight}")

    def output_only(self) -> GeneratorDistillation:
        """The baseline: the same run with the feature and adversarial terms switched off."""
        return dataclasses.replace(self, feature_weight=0.0, adversarial_weight=0.0)


def distill_generator(teacher: ConditionalGenerator, student: ConditionalGenerator, settings: GeneratorDistillation,
                      generator: torch.Generator, discriminator: ConditionalDiscriminator | None = None,
                      on_log: Callable[[int, float], None] | None = None, log_every: int = 100,
                      precision: str = "fp32") -> float:
    """Train ``student`` (in place) to imitate ``teacher``; returns the mean loss of the last ``log_every`` steps.

    ``generator`` is the only source of inputs (noise and labels), drawn on its device, where the networks live.
    ``discriminator`` is required when ``settings.adversarial_weight`` > 0. ``on_log(step, mean_loss)`` is called
    every ``log_every`` steps. The networks' forward passes run in ``precision`` (``fedkd.precision``).
    """
    settings.validate()
    if settings.adversarial_weight > 0 and discriminator is None:
        raise ConfigError("an adversarial_weight > 0 needs the teacher's discriminator")
    if (student.config.n_classes, student.config.z_dim) != (teacher.config.n_classes, teacher.config.z_dim):
        raise ConfigError("student and teacher must share n_classes and z_dim to see the same inputs")
    teacher.eval()
    adapter = ChannelAdapter(student.config.widths[-1], teacher.config.widths[-1]).to(generator.device)

    def loss_fn() -> torch.Tensor:
        n, device = settings.batch_size, generator.device
        z = torch.randn(n, teacher.config.z_dim, generator=generator, device=device)
        y = torch.randint(0, teacher.config.n_classes, (n,), generator=generator, device=device)
        with torch.no_grad():
            target, h_teacher = teacher.forward_with_hidden(z, y)
        images, h_student = student.forward_with_hidden(z, y)
        loss = (images.float() - target.float()).abs().mean()
        if settings.feature_weight > 0:
            loss = loss + settings.feature_weight * feature_l1(h_student, h_teacher, adapter)
        if settings.adversarial_weight > 0:
            loss = loss - settings.adversarial_weight * discriminator(images, y).float().mean()
        return loss

    student.train()
    mean_loss = minimise(loss_fn, [*student.parameters(), *adapter.parameters()], steps=settings.steps,
                         lr=settings.lr, betas=(0.5, 0.999), desc="distill generator", on_log=on_log,
                         log_every=log_every, precision=precision)
    student.eval()
    return mean_loss
