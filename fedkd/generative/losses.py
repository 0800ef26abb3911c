"""What the distillation loops share: the feature-matching term, the optimisation loop and its loss report.

A smaller student's last hidden map has fewer channels than the teacher's, so it is compared through a
1x1 convolution (FitNets, Romero et al., 2015) trained with the student and thrown away afterwards:
``L_feat = mean |A(h_s) - h_t|``. When the widths agree, ``A`` is the identity and adds no parameters.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import torch
from torch import nn

from fedkd.precision import autocast
from fedkd.progress import progress


class ChannelAdapter(nn.Module):
    """``A``: student feature maps (B, c_student, H, W) -> (B, c_teacher, H, W)."""

    def __init__(self, c_student: int, c_teacher: int) -> None:
        super().__init__()
        self.map = nn.Identity() if c_student == c_teacher else nn.Conv2d(c_student, c_teacher, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.map(h)


def feature_l1(h_student: torch.Tensor, h_teacher: torch.Tensor, adapter: ChannelAdapter) -> torch.Tensor:
    """Mean absolute difference between the adapted student features and the (detached) teacher features, in
    float32 whatever precision the features were computed in."""
    return (adapter(h_student).float() - h_teacher.detach().float()).abs().mean()


class LossLog:
    """Mean of the last ``every`` losses, reported as ``on_log(step, mean)`` every ``every`` steps."""

    def __init__(self, on_log: Callable[[int, float], None] | None, every: int) -> None:
        if every < 1:
            raise ValueError(f"log interval must be >= 1, got {every}")
        self.on_log, self.every = on_log, every
        self.values: deque[float] = deque(maxlen=every)

    def add(self, step: int, loss: float) -> None:
        self.values.append(loss)
        if self.on_log is not None and step % self.every == 0:
            self.on_log(step, self.mean)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else float("nan")


def minimise(loss_fn: Callable[[], torch.Tensor], parameters: Iterable[nn.Parameter], *, steps: int, lr: float,
             desc: str, on_log: Callable[[int, float], None] | None = None, log_every: int = 100,
             betas: tuple[float, float] = (0.9, 0.999), precision: str = "fp32") -> float:
    """Adam on ``loss_fn()`` (a fresh batch's loss per call) for ``steps`` steps, learning rate cosine-decayed
    from ``lr`` to 0; returns the mean of the last ``log_every`` losses, reported through ``on_log``.

    ``loss_fn`` runs in ``precision`` (``fedkd.precision``) on the parameters' device; it computes its loss from
    float32 (``.float()`` outputs), and the loss is taken as float32."""
    parameters = list(parameters)
    opt = torch.optim.Adam(parameters, lr=lr, betas=betas)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses = LossLog(on_log, log_every)
    for step in progress(range(1, steps + 1), desc=desc):
        with autocast(precision, parameters[0].device):
            loss = loss_fn().float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.add(step, loss.item())
    return losses.mean
