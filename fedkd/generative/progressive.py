"""Progressive distillation (Salimans & Ho, 2022), the baseline of single-fold distillation.

Each round halves the number of sampling steps: a student on every second step of the current model
learns to do in one deterministic DDIM step what the current model does in two. For a student step from
``t`` to ``t''`` (two model steps ``t -> t' -> t''``), with ``alpha = sqrt(alpha_bar)``,
``sigma = sqrt(1 - alpha_bar)``:

    z~    = DDIM(DDIM(z_t, t -> t'), t' -> t'')            (the current model, frozen)
    x~    = (z~ - (sigma''/sigma) z_t) / (alpha'' - (sigma''/sigma) alpha)   (the clean image one step must predict)
    eps~  = (z_t - alpha x~) / sigma
    L     = ||eps_s(z_t, t) - eps~||_1

The student then becomes the next round's teacher, and the next student starts from its weights (the UNet
sees absolute timesteps, so the weights keep their meaning). The paper regresses x or v with a truncated
SNR weight; our models are eps-parameterised like the teacher, so the target is converted to eps and
weighted as in single-fold distillation (L1), which keeps the two methods' losses alike. Every optimizer
step costs two teacher evaluations; ``rounds`` rounds of ``settings.steps`` steps give a student with
``T / 2^rounds`` steps after ``rounds * settings.steps`` optimizer steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fedkd.errors import ConfigError
from fedkd.generative.losses import minimise
from fedkd.generative.single_fold import DiffusionDistillation, noisy_batch
from fedkd.models.diffusion import DiffusionModel


def progressive_distill(teacher: DiffusionModel, x0: torch.Tensor, settings: DiffusionDistillation, rounds: int,
                        generator: torch.Generator, architecture: dict | None = None,
                        on_log: Callable[[int, int, float], None] | None = None, log_every: int = 100,
                        on_round: Callable[[int, DiffusionModel], None] | None = None,
                        precision: str = "fp32") -> list[DiffusionModel]:
    """The students of ``rounds`` halvings (T/2, T/4, ...), each trained for ``settings.steps`` steps.

    ``architecture`` overrides the teacher's UNet for the first student (later students copy their
    predecessor). ``on_log(round, step, mean_loss)`` is called every ``log_every`` steps and
    ``on_round(round, student)`` after each round. The networks' forward passes run in ``precision``
    (``fedkd.precision``).
    """
    settings.validate()
    if rounds < 1 or teacher.num_steps % 2 ** rounds:
        raise ConfigError(f"{rounds} halvings need a step count divisible by 2^{rounds}, "
                          f"the teacher has {teacher.num_steps}")
    students: list[DiffusionModel] = []
    current = teacher
    for round_ in range(1, rounds + 1):
        overrides = (architecture or {}) if round_ == 1 else {}
        student = current.with_steps(current.schedule.fold(2), **overrides).to(x0.device)
        if round_ > 1:
            student.unet.load_state_dict(current.unet.state_dict())
        report = None if on_log is None else (lambda step, loss, r=round_: on_log(r, step, loss))
        _distill_round(current, student, x0, settings, generator, report, log_every, precision)
        students.append(student)
        if on_round is not None:
            on_round(round_, student)
        current = student
    return students


def two_step_target(model: DiffusionModel, z_t: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """eps~ for a student at ``model``'s step positions ``pos`` (odd, B,): what one DDIM step must predict
    to land where two of ``model``'s DDIM steps land (the formulas in the module docstring)."""
    with torch.no_grad():
        z_mid = model.ddim_update(z_t, pos, pos - 1)
        z_end = model.ddim_update(z_mid, pos - 1, pos - 2)
    alpha_bar = model.schedule.alpha_bar.to(z_t.device)
    a_t = alpha_bar[pos].view(-1, 1, 1, 1)
    a_end = torch.where(pos - 2 >= 0, alpha_bar[(pos - 2).clamp(min=0)], torch.ones(())).view(-1, 1, 1, 1)
    ratio = (1 - a_end).sqrt() / (1 - a_t).sqrt()
    x_target = (z_end - ratio * z_t) / (a_end.sqrt() - ratio * a_t.sqrt())
    return (z_t - a_t.sqrt() * x_target) / (1 - a_t).sqrt()


def _distill_round(teacher: DiffusionModel, student: DiffusionModel, x0: torch.Tensor,
                   settings: DiffusionDistillation, generator: torch.Generator,
                   on_log: Callable[[int, float], None] | None, log_every: int, precision: str) -> None:
    def loss_fn() -> torch.Tensor:
        z_t, pos = noisy_batch(student, x0, settings.batch_size, generator)
        return F.l1_loss(student.eps(z_t, pos).float(), two_step_target(teacher, z_t, 2 * pos + 1).float())

    teacher.eval()
    student.train()
    minimise(loss_fn, student.parameters(), steps=settings.steps, lr=settings.lr,
             desc=f"progressive T'={student.num_steps}", on_log=on_log, log_every=log_every, precision=precision)
    student.eval()
