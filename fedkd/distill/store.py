"""The answer store: every query a distillation run paid for, kept with its answer, and the student's stage on it.

Queries are the scarce resource of black-box and federated distillation, so a paid-for answer is worth reusing:
AEDM replays stored answers beside each fresh batch and trains offline on all of them once its budget is
spent, and a federated query strategy can train its student on the store after every round. One store and one
training stage serve them all, centralized or federated.

The store keeps each query in the codes it travels in (``fedkd.payload``: ``uint8`` with its range), so its
memory is a quarter of ``float32`` and a federated student trains on exactly the images the clients answered.

>>> import torch
>>> store = AnswerStore()
>>> store.add(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 1]), round=1)
>>> len(store), store.answers.tolist(), store.inputs(torch.tensor([0])).shape
(4, [0, 1, 2, 1], torch.Size([1, 1, 8, 8]))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fedkd.distill.losses import disagreement
from fedkd.errors import ConfigError
from fedkd.payload import decode_images, encode_images
from fedkd.precision import autocast


class AnswerStore:
    """Answered queries in arrival order: inputs (compact codes), answers, and the round that asked each.

    Each field lives in one buffer that doubles when full, so adding a batch costs its own size (amortised), not a
    copy of everything stored so far.
    """

    def __init__(self) -> None:
        self._size = 0
        self._buffers: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return self._size

    def add(self, x: torch.Tensor, answers: torch.Tensor, round: int = 0) -> None:
        """Keep ``x`` (N, C, H, W) with its ``answers`` (labels (N,) or probabilities (N, C))."""
        codes, scale = encode_images(x)
        rows = {"codes": codes.cpu(), "scales": scale.cpu(), "answers": answers.detach().cpu(),
                "rounds": torch.full((len(x),), round, dtype=torch.int32)}
        end = self._size + len(x)
        for name, new in rows.items():
            buffer = self._buffers.get(name)
            if buffer is None or len(buffer) < end:
                grown = torch.empty((max(end, 2 * self._size), *new.shape[1:]), dtype=new.dtype)
                if buffer is not None:
                    grown[:self._size] = buffer[:self._size]
                self._buffers[name] = buffer = grown
            buffer[self._size:end] = new
        self._size = end

    def _field(self, name: str, empty: torch.Tensor) -> torch.Tensor:
        return self._buffers[name][:self._size] if self._size else empty

    @property
    def answers(self) -> torch.Tensor:
        return self._field("answers", torch.empty(0, dtype=torch.long))

    @property
    def rounds(self) -> torch.Tensor:
        return self._field("rounds", torch.empty(0, dtype=torch.int32))

    def inputs(self, idx: torch.Tensor) -> torch.Tensor:
        """The stored queries at ``idx``, decoded to ``float32``."""
        return decode_images(self._buffers["codes"][:self._size][idx], self._buffers["scales"][:self._size][idx])

    def state_dict(self) -> dict[str, Any]:
        if not self._size:
            return {"size": 0}
        return {"size": self._size, **{name: buffer[:self._size] for name, buffer in self._buffers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__init__()
        if state["size"]:
            self._buffers = {name: state[name].clone() for name in ("codes", "scales", "answers", "rounds")}
            self._size = int(state["size"])


@dataclass(frozen=True)
class StoreTraining:
    """How the student trains on the store: Adam at ``lr`` for ``epochs`` passes in batches of ``batch_size``,
    at most ``max_steps`` steps (0: no cap), each batch moved by ``random_affine`` (``shift`` pixels,
    ``degrees``, ``scale``), and each answer weighed by ``class_weights`` when ``balance_classes``. With
    ``mixup`` each augmented query is blended with another of its batch, ``lam * x_i + (1 - lam) * x_j`` with
    ``lam`` uniform in [0, 1] per pair (mixup with alpha = 1), and its loss is the same blend of the two answers'
    losses: no query is spent on the blends, and the student is asked to be linear between stored answers. Off by
    default: on the federated AEDM configs it cost 1-2 points (the README's lever tables)."""

    epochs: int
    batch_size: int
    lr: float
    max_steps: int = 0
    shift: float = 0.0
    degrees: float = 0.0
    scale: float = 0.0
    balance_classes: bool = False
    mixup: bool = False

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_affine(x, self.shift, self.degrees, self.scale, generator)


@dataclass
class StoreStageSettings:
    """The store stage's settings, written once for every config section that has one (``[aedm]``, and the generator
    methods' ``[tandemgan]`` and ``[dfme]``): ``offline_epochs`` passes over every stored answer once the budget is
    spent, in batches of ``offline_batch_size`` with Adam at ``offline_lr``, at most ``offline_max_steps`` steps (0:
    no cap, so its cost grows with the budget), each batch moved by a random affine map (``augment_shift`` pixels,
    ``augment_degrees``, ``augment_scale``); ``balance_classes`` and ``mixup`` as in :class:`StoreTraining`. A
    section sets its own default for ``offline_epochs``: AEDM trains offline by design, the generator methods only
    when asked (0: no store, and no memory spent on one)."""

    offline_epochs: int = 0
    offline_batch_size: int = 128
    offline_lr: float = 1e-3
    offline_max_steps: int = 0
    augment_shift: float = 2.0
    augment_degrees: float = 10.0
    augment_scale: float = 0.1
    balance_classes: bool = False
    mixup: bool = False

    def validate_store_stage(self, section: str) -> None:
        """One clear line for the first setting out of range, named ``section.key``."""
        if self.offline_batch_size < 1:
            raise ConfigError(f"{section}.offline_batch_size must be >= 1, got {self.offline_batch_size}")
        for name in ("offline_epochs", "offline_max_steps", "augment_shift", "augment_degrees", "augment_scale"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{section}.{name} must be >= 0, got {getattr(self, name)}")
        if not self.offline_lr > 0:
            raise ConfigError(f"{section}.offline_lr must be > 0, got {self.offline_lr}")

    def store_training(self) -> StoreTraining:
        """These settings as the loop's :class:`StoreTraining`."""
        return StoreTraining(epochs=self.offline_epochs, batch_size=self.offline_batch_size, lr=self.offline_lr,
                             max_steps=self.offline_max_steps, shift=self.augment_shift,
                             degrees=self.augment_degrees, scale=self.augment_scale,
                             balance_classes=self.balance_classes, mixup=self.mixup)


def random_affine(x: torch.Tensor, shift: float, degrees: float, scale: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) in [-1, 1] moved by its own random rotation, scale and shift.

    Rotation is uniform in ``±degrees``, scale in ``1 ± scale``, shift in ``±shift`` pixels; pixels
    that come from outside the image are background (-1). Stored answers stay valid under such moves.
    """
    n, size = len(x), x.shape[-1]
    uniform = (torch.rand((n, 4), generator=generator, device=generator.device) * 2 - 1).to(x.device)
    angle = uniform[:, 0] * math.radians(degrees)
    zoom = 1 + uniform[:, 1] * scale
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    theta = torch.stack([torch.stack([cos, -sin, uniform[:, 2] * shift * 2 / size], 1),
                         torch.stack([sin, cos, uniform[:, 3] * shift * 2 / size], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1


def class_weights(answers: torch.Tensor) -> torch.Tensor:
    """Per stored answer ``N / (C * n_c)``, ``c`` its class (arg-max in proba mode) and ``C`` the number of
    classes answered at all: every answered class weighs the same in total, and the mean weight is 1.

    A teacher (or a federation) may answer most queries with a few classes; unweighted, a student trained on
    those answers rarely predicts the rare ones."""
    classes = answers if answers.dim() == 1 else answers.argmax(dim=1)
    counts = torch.bincount(classes).float()
    return (len(classes) / (int((counts > 0).sum()) * counts))[classes]


def mixup_pairs(n: int, generator: torch.Generator,
                device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """For a batch of ``n``: each item's blending partner (a permutation of the batch) and its weight ``lam``,
    uniform in [0, 1], both drawn from ``generator``."""
    partner = torch.randperm(n, generator=generator, device=generator.device).to(device)
    lam = torch.rand(n, generator=generator, device=generator.device).to(device)
    return partner, lam


def draw(store: AnswerStore, n: int, training: StoreTraining, generator: torch.Generator,
         device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` stored queries drawn uniformly with replacement, augmented, with their answers (replay)."""
    idx = torch.randint(len(store), (n,), generator=generator, device=generator.device).cpu()
    return training.augment(store.inputs(idx).to(device), generator), store.answers[idx].to(device)


def train_on_store(student: nn.Module, store: AnswerStore, training: StoreTraining, mode: str,
                   generator: torch.Generator, precision: str = "fp32",
                   adjusted: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """The store stage: ``training.epochs`` epochs of Adam on the augmented store; returns the steps taken.

    The student's forward passes run in ``precision`` (``fedkd.precision``), its loss in float32 on its logits
    as ``adjusted`` maps them (the loop's logit adjustment; ``None``: unchanged). The student's mode is restored
    afterwards; the stage spends no queries.
    """
    if not len(store) or training.epochs < 1:
        return 0
    device = next(student.parameters()).device
    optimizer = torch.optim.Adam(student.parameters(), lr=training.lr)
    answers = store.answers.to(device)
    weights = class_weights(answers) if training.balance_classes else torch.ones(len(answers), device=device)
    batches = [idx for _ in range(training.epochs)
               for idx in torch.randperm(len(store), generator=generator, device=generator.device).cpu()
               .split(training.batch_size)]
    batches = batches[:training.max_steps or None]
    was_training = student.training
    student.train()
    for idx in batches:
        x = training.augment(store.inputs(idx).to(device), generator)
        if training.mixup:
            partner, lam = mixup_pairs(len(idx), generator, device)
            x = lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[partner]
        with autocast(precision, device):
            logits = student(x).float()
        if adjusted is not None:
            logits = adjusted(logits)
        loss = disagreement(logits, answers[idx], mode) * weights[idx]
        if training.mixup:
            other = idx[partner.cpu()]
            loss = lam * loss + (1 - lam) * disagreement(logits, answers[other], mode) * weights[other]
        loss = loss.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    student.train(was_training)
    return len(batches)

