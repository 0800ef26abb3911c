"""Losses shared by the black-box distillers, and the zeroth-order gradient estimate through a teacher.

Notation: ``s`` are the student's logits for a batch, ``a`` the oracle's answers (class indices in label
mode, probabilities in proba mode), ``C`` the number of classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Teacher probabilities are clamped here before the log, so a float32 zero cannot give -inf.
PROBA_FLOOR = 1e-8


def centred_log_probs(log_p: torch.Tensor) -> torch.Tensor:
    """``log p - mean_c log p``: logits recovered from probabilities up to the softmax's free constant."""
    return log_p - log_p.mean(dim=1, keepdim=True)


def disagreement(student_logits: torch.Tensor, answers: torch.Tensor, mode: str) -> torch.Tensor:
    """Per-sample disagreement between the student and the teacher's answers, shape ``(B,)``.

    * label mode: cross-entropy ``-log softmax(s)[a]``;
    * proba mode: ``(1/C) * || c(log softmax(s)) - c(log a) ||_1`` with ``c`` the centring above, the
      L1 between recovered logits that DFME uses because, unlike KL, it does not vanish where the student
      already matches the teacher's arg-max, so the generator keeps a gradient to climb.

    The student minimises it; the exploring generator maximises it.
    """
    if mode == "label":
        return F.cross_entropy(student_logits, answers, reduction="none")
    student = centred_log_probs(F.log_softmax(student_logits, dim=1))
    teacher = centred_log_probs(answers.clamp_min(PROBA_FLOOR).log())
    return (student - teacher).abs().mean(dim=1)


def log_class_prior(counts: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``log pi``: the log frequencies of ``counts`` (answers per class, possibly fewer than ``n_classes``
    entries), add-one smoothed over ``n_classes`` so a class never answered has a finite log prior."""
    padded = torch.ones(n_classes, dtype=torch.float64, device=counts.device)
    padded[:len(counts)] += counts.double()
    return (padded / padded.sum()).log().float()


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample entropy ``H(softmax(s))``, shape ``(B,)``: low where the student is confident."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def marginal_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the batch's mean prediction ``H(mean_i softmax(s_i))``: high when the batch covers all classes."""
    mean_p = F.softmax(logits, dim=1).mean(dim=0)
    return -(mean_p * mean_p.clamp_min(PROBA_FLOOR).log()).sum()


def zeroth_order_probes(x: torch.Tensor, directions: int, epsilon: float,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(queries, u)``: ``x`` followed by its ``m = directions`` perturbed copies ``x + eps u`` (one request of
    ``(m + 1) * B`` queries), and the random unit directions ``u`` (m, B, ...) they used."""
    n = len(x)
    unit_shape = (directions, n) + (1,) * (x.dim() - 1)
    u = torch.randn((directions, *x.shape), generator=generator, device=generator.device).to(x.device)
    u = u / u.flatten(2).norm(dim=2).view(unit_shape)
    return torch.cat([x, (x.unsqueeze(0) + epsilon * u).flatten(0, 1)]), u


def zeroth_order_disagreement_gradient(student: nn.Module, queries: torch.Tensor, answers: torch.Tensor,
                                       u: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Forward-difference estimate of ``grad_x`` of the proba-mode disagreement, through the black-box teacher.

    With ``L_i(x) = disagreement(S(x), T(x))_i``, ``m`` random unit directions ``u_ij`` per sample and ``d``
    pixels per sample (DFME, Truong et al. 2021, eq. 6):

        g_i = (d / m) * sum_j [(L_i(x_i + eps u_ij) - L_i(x_i)) / eps] * u_ij

    ``queries`` and ``u`` come from ``zeroth_order_probes``; ``answers`` are the teacher's to all of them.
    """
    directions, n = u.shape[0], u.shape[1]
    d = queries[0].numel()
    with torch.no_grad():
        losses = disagreement(student(queries), answers, "proba")
    slopes = (losses[n:].view(directions, n) - losses[:n]) / epsilon
    return (d / directions) * (slopes.view(u.shape[:2] + (1,) * (u.dim() - 2)) * u).sum(dim=0)
