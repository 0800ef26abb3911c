"""Compact forms of queries and answers: what travels between a server and its clients, and what a run keeps.

A query image travels as ``uint8`` codes with its own ``[lo, hi]`` range (the image's min and max), a quarter of
its ``float32`` size; the receiver decodes it to ``lo + code / 255 * (hi - lo)``, which is within half a step,
``(hi - lo) / 510``, of the original. Label answers travel in the smallest integer type that holds the class
count, probabilities as ``float16``. The answer store of a distillation run keeps its queries in the same codes,
so what a student trains on is exactly what the clients answered.

>>> import torch
>>> x = torch.rand(2, 1, 4, 4) * 2 - 1
>>> codes, scale = encode_images(x)
>>> codes.dtype, scale.shape, bool((decode_images(codes, scale) - x).abs().max() <= 1 / 255 + 1e-6)
(torch.uint8, torch.Size([2, 2]), True)
>>> compact_answers(torch.tensor([3, 9]), n_classes=10).dtype
torch.uint8
"""

from __future__ import annotations

import torch

from fedkd.errors import FedkdError


def encode_images(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codes, scale)``: ``uint8`` codes shaped like ``x`` and a ``(N, 2)`` ``float32`` ``[lo, hi]`` per image."""
    flat = x.detach().flatten(1).float()
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    span = (hi - lo).clamp_min(1e-12)
    codes = ((flat - lo[:, None]) / span[:, None] * 255).round().clamp(0, 255).to(torch.uint8)
    return codes.view(x.shape), torch.stack([lo, hi], dim=1)


def decode_images(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The ``float32`` images that ``encode_images`` encoded (to within half a code step)."""
    if codes.dtype != torch.uint8 or scale.shape != (len(codes), 2):
        raise FedkdError(f"image codes must be uint8 with an (N, 2) scale, got {codes.dtype} and {tuple(scale.shape)}")
    lo, hi = scale[:, 0].float(), scale[:, 1].float()
    flat = codes.flatten(1).float() / 255 * (hi - lo)[:, None] + lo[:, None]
    return flat.view(codes.shape)


def label_dtype(n_classes: int) -> torch.dtype:
    """The smallest integer type that holds class indices ``0 .. n_classes - 1``."""
    if n_classes <= 256:
        return torch.uint8
    return torch.int16 if n_classes <= 2**15 else torch.int32


def compact_answers(answers: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Labels in ``label_dtype(n_classes)``, probabilities as ``float16``."""
    if answers.dim() == 1:
        return answers.to(label_dtype(n_classes))
    return answers.to(torch.float16)


def expand_answers(answers: torch.Tensor) -> torch.Tensor:
    """Compact answers back to what the losses take: ``int64`` labels, ``float32`` probabilities."""
    if answers.dim() == 1:
        if answers.is_floating_point():
            raise FedkdError(f"label answers must be integers, got {answers.dtype}")
        return answers.long()
    return answers.float()
