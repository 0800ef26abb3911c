"""AEDM: black-box distillation with queries steered through a diffusion prior trained on public data.

A user holds a label- or probability-only teacher and a diffusion model ``D`` trained on *public* data
that is related to, but not, the teacher's training data (here: the teacher learnt ``mnist5k``, real
MNIST; the prior learnt the UCI ``digits``, other writers scanned at 8x8 -- see ``load_aedm_prior``).
Instead of training a generator against the student, AEDM optimises the prior's input noise, so every
query is a decoded image of the prior that the current student is unsure about. Per query batch:

1. **steer** (no teacher query): ``x_T ~ N(0, I)``, then ``steer_steps`` Adam steps on

       max_{x_T}  mean_i H(S(D(x_T)_i))  +  lambda * H(mean_i S(D(x_T)_i)),

   with ``D`` the prior's DDIM sampler (eta 0, ``sampling_steps`` steps, gradients through the last
   ``grad_last_k`` of them and straight through the rest) and ``S`` the student. The first term picks
   the images the student is least sure of; the second (the batch's marginal entropy, as in TandemGAN)
   keeps the batch spread over classes. After each step every ``x_T`` is rescaled to norm ``sqrt(d)``,
   the shell where a d-dimensional Gaussian lives, so steering moves *along* the prior's inputs and
   never towards the atypical noise the prior has not learnt to decode;
2. **decode and query**: ``x = up(D(x_T))`` (bilinear into a ``query_box`` box centred in the teacher's
   frame, see ``frame_images``), ``a = T(x)``: ``B`` queries;
3. **store** ``(x, a)`` in the loop's answer store (``fedkd.distill.store``), its replay memory;
4. **one online student step**, taken by the shared loop, on the fresh batch plus ``replay_batches``
   augmented batches from the store;
5. when the oracle's budget cannot pay for another batch: **offline training**, the loop's store stage: the
   student trains on every stored answer for ``offline_epochs`` epochs with random affine augmentation (its
   own Adam, ``offline_lr``). Queries are the scarce resource, so each paid-for answer is reused many times.

``steer = false`` skips step 1 (plain prior samples): the ablation that shows what steering adds.

**Adapting the framing to the teacher** (``adapt_queries`` > 0). Teachers of other architectures read the
prior's images very differently (``benchmarks/teacher_panel.py``): thin grey strokes that one teacher reads
correctly, another answers with one class. The first ``adapt_queries`` queries cycle batch by batch through a few
mild query transforms (``fedkd.distill.transforms.candidates``: the ``query_box`` framing or a box 4 pixels
smaller or larger, with or without thicker strokes and more contrast); every later batch uses the one whose
answers had the highest class entropy (``fedkd.distill.histogram``) when the probing ended (in a federated wave:
the answers received by then), unless it beats the plain framing by no more than chance would (``AEDM.chosen``).
Only the answers decide, so it works in label mode and needs no labelled data; the probing batches are stored
and trained on like any other. The adapted framing is for the teacher to read the digit; the student is tested
on the teacher's own inputs, laid out as ``query_box`` says, so with ``learn_plain`` it learns each answer on the
same decoded image in that plain framing (``Proposal.seen``), which did better than learning the adapted
framing on the teachers that needed another framing.

**Selecting towards classes the teacher rarely names** (``select_from`` > 1, plain samples only). A teacher may
answer most prior images with a few classes, and every further answer of those classes teaches little. After the
framing is chosen, each batch is drawn from ``select_from`` times as many decoded images: the student (free to
ask) predicts each one's class, and the batch is sampled without replacement with weights ``1 / (1 + n_c)``,
``n_c`` the number of answers of the predicted class so far. Only the kept images are asked, so the budget is
unchanged; decoding costs ``select_from`` times more.

Each batch costs exactly ``B`` queries; the loop must take no fresh student batches
(``distill.student_steps = 0``), because its batches would not reach the memory.

>>> import torch
>>> from fedkd.models.diffusion import DiffusionConfig, DiffusionModel
>>> from fedkd.oracle import ModelOracle
>>> prior = DiffusionModel(DiffusionConfig(image_size=8, widths=(8, 16), num_train_steps=16)).eval()
>>> teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
>>> student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
>>> aedm = AEDM(AEDMConfig(sampling_steps=2, grad_last_k=1, steer_steps=1, offline_epochs=0), prior, 28, seed=0)
>>> oracle = ModelOracle(teacher, mode="label", budget=32)
>>> from fedkd.distill.loop import BlackBoxDistiller, DistillConfig
>>> config = DistillConfig(method="aedm", batch_size=16, student_steps=0)
>>> distiller = BlackBoxDistiller(student, oracle, aedm, config)
>>> distiller.run()
>>> oracle.used, len(distiller.store), distiller.student_updates
(32, 32, 2)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fedkd.distill.histogram import AnswerHistogram
from fedkd.distill.loop import AnsweredBatch, Proposal
from fedkd.distill.losses import marginal_entropy, prediction_entropy
from fedkd.distill.store import StoreStageSettings
from fedkd.distill.transforms import QueryTransform, candidates
from fedkd.errors import ConfigError
from fedkd.models.diffusion import DiffusionModel, resize_images
from fedkd.precision import autocast
from fedkd.seeding import torch_generator


@dataclass
class AEDMConfig(StoreStageSettings):
    """AEDM's hyper-parameters (the ``[aedm]`` config section); see the module docstring for each step.

    ``prior`` is a ``fedkd prior train --out`` directory whose metadata must name ``prior_dataset``.
    The ``offline_*``, ``augment_*``, ``balance_classes`` and ``mixup`` settings are the store stage's
    (``fedkd.distill.store.StoreStageSettings``; 30 offline epochs by default here); the ``augment_*`` map also
    moves the replayed batches. ``query_box`` is the side of the centred box the decoded image fills in
    the teacher's frame, the rest being background (MNIST centres its digits in a 20x20 box of 28x28: a
    public fact about the teacher's input format); 0 fills the whole frame.
    ``balance_classes`` weighs each stored answer in the offline phase by ``N / (C * n_c)`` for its (arg-max)
    class ``c`` (``fedkd.distill.store.class_weights``): a teacher may answer most prior images with a few classes
    (a federation's combined answers can name some classes for a handful of queries only), and an unweighted
    student then rarely predicts the rare ones (``tests/test_store.py`` checks the recall of a rare class with
    and without the weights). ``adapt_queries`` (0: off) is the number of first queries spent choosing the query
    transform (see the module docstring); it is rounded up to whole batches. ``learn_plain`` has the student
    learn each answer on the same prior image in the plain ``query_box`` framing, not in the framing the teacher
    was asked in. ``select_from`` (1: off) is how many decoded images each kept
    query is selected from, towards the classes the teacher has answered least (see the module docstring).
    ``ink_level`` (``[lo, hi]``; empty: off) sharpens every query, framing candidates included: each decoded image
    keeps its level set above its own level, uniform in ``[lo, hi]``, as full ink (``fedkd.distill.transforms``), so
    the UCI digits' blurred blobs reach the teacher, and the student, as sharp strokes of varied width.
    """

    section: ClassVar[str] = "aedm"
    prior: str = "pretrained/prior-digits"
    prior_dataset: str = "digits"
    steer: bool = True
    sampling_steps: int = 8
    grad_last_k: int = 2
    steer_steps: int = 5
    steer_lr: float = 0.1
    balance_weight: float = 1.0
    replay_batches: int = 1
    offline_epochs: int = 30
    query_box: int = 0
    adapt_queries: int = 0
    learn_plain: bool = False
    select_from: int = 1
    ink_level: tuple[float, ...] = ()

    def validate(self) -> None:
        self.validate_store_stage(self.section)
        for name in ("sampling_steps", "steer_steps", "select_from"):
            if getattr(self, name) < 1:
                raise ConfigError(f"aedm.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("grad_last_k", "replay_batches", "query_box", "adapt_queries", "balance_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"aedm.{name} must be >= 0, got {getattr(self, name)}")
        if self.grad_last_k > self.sampling_steps:
            raise ConfigError(f"aedm.grad_last_k ({self.grad_last_k}) must be <= aedm.sampling_steps "
                              f"({self.sampling_steps})")
        if self.ink_level and not (len(self.ink_level) == 2 and -0.75 < self.ink_level[0] <= self.ink_level[1] < 1):
            raise ConfigError(f"aedm.ink_level must be empty (off) or [lo, hi] with -0.75 < lo <= hi < 1, got "
                              f"{list(self.ink_level)} (below -0.75 the background itself turns to ink)")
        if not self.steer_lr > 0:
            raise ConfigError(f"aedm.steer_lr must be > 0, got {self.steer_lr}")


def frame_images(small: torch.Tensor, size: int, box: int) -> torch.Tensor:
    """``small`` resized (bilinear, differentiable) to ``box`` x ``box`` and centred on a background (-1)
    frame of ``size`` x ``size``; ``box`` 0 or ``size`` fills the whole frame."""
    box = box or size
    images = resize_images(small, box)
    before, after = (size - box) // 2, size - box - (size - box) // 2
    return F.pad(images, (before, after, before, after), value=-1.0) if box < size else images


#: Datasets made from another one (``digits28`` is ``digits`` upsampled): a prior on either has seen both.
DERIVED_FROM: dict[str, str] = {"digits28": "digits"}


def require_no_fresh_student_batches(student_steps: int) -> None:
    """AEDM's own batch (fresh + replayed) is the online student step; the shared loop's fresh batches would
    spend queries whose answers never reach the replay memory, so ``distill.student_steps`` must be 0."""
    if student_steps != 0:
        raise ConfigError(f"distill.method = 'aedm' needs distill.student_steps = 0 (got {student_steps}): "
                          f"every query must reach AEDM's replay memory")


def load_aedm_prior(config: AEDMConfig, teacher_dataset: str, channels: int) -> DiffusionModel:
    """The prior ``config.prior`` names, checked to be public data with respect to the teacher.

    The loader refuses a missing file, a checksum mismatch, or metadata whose dataset is not
    ``config.prior_dataset`` or whose channels differ from the teacher's; this function also refuses a
    prior trained on the teacher's own training data (or data derived from the same source), because
    then AEDM would not be data-free.
    """
    from fedkd.generative.artifacts import resolve_path
    from fedkd.models.diffusion import load_prior

    source = DERIVED_FROM.get(teacher_dataset, teacher_dataset)
    if DERIVED_FROM.get(config.prior_dataset, config.prior_dataset) == source:
        raise ConfigError(f"aedm.prior_dataset = {config.prior_dataset!r} is the teacher's own data "
                          f"({teacher_dataset!r}); the prior must learn public data the teacher never saw")
    return load_prior(resolve_path(config.prior),
                      expect={"dataset": config.prior_dataset, "channels": channels})


class AEDM:
    """The AEDM query source for the shared loop; see the module docstring for the method.

    ``prior`` decodes noise to images (``load_aedm_prior``); ``image_size`` is the teacher's. The replay memory
    and the offline phase are the loop's answer store and store stage (``store_training``, from the ``offline_*``
    and ``augment_*`` settings). ``seconds["steer"]`` is this source's own time (noise optimisation and decoding).
    ``transforms`` are the framings adaptation chooses among (only the plain ``query_box`` framing when
    ``adapt_queries`` is 0), ``answers`` the class histogram of each one's answers. ``precision`` is that of the
    prior's and the student's forward passes in steering and decoding (``fedkd.precision``); the images and the
    objective are float32.
    """

    def __init__(self, config: AEDMConfig, prior: DiffusionModel, image_size: int, seed: int,
                 device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        config.validate()
        if config.query_box > image_size:
            raise ConfigError(f"aedm.query_box must be <= the teacher's image size {image_size} (0 = all of "
                              f"it), got {config.query_box}")
        self.config, self.prior, self.image_size = config, prior.to(device), image_size
        self.device, self.precision = device, precision
        self.rng = torch_generator(seed, "aedm", "noise", device=device)
        self.select_rng = torch_generator(seed, "aedm", "select")
        self.transform_rng = torch_generator(seed, "aedm", "transform", device=device)
        self.seconds = {"steer": 0.0}
        ink = tuple(config.ink_level) or None
        self.transforms = ([replace(t, ink_level=ink) for t in candidates(config.query_box, image_size)]
                           if config.adapt_queries else [QueryTransform(box=config.query_box, ink_level=ink)])
        self.answers = [AnswerHistogram() for _ in self.transforms]
        self.proposed = 0
        self.current = 0
        self.choice = -1  # the chosen transform, once the probing has ended
        self.store_training = config.store_training()

    def queries_per_step(self, batch_size: int, mode: str) -> int:
        return batch_size

    def propose(self, student: nn.Module, batch_size: int, mode: str) -> Proposal:
        """Steer (unless ``steer`` is off) and decode one batch, framed as the teacher sees it: while adapting, with
        the next candidate transform in turn, then with the chosen one."""
        if self.proposed < math.ceil(self.config.adapt_queries / batch_size):
            self.current = self.proposed % len(self.transforms)
        else:
            self.choice = self.chosen() if self.choice < 0 else self.choice
            self.current = self.choice
        self.proposed += 1
        start = time.perf_counter()
        if self.config.steer:
            small = self.steered(student, batch_size)
        elif self.config.select_from > 1 and self.choice >= 0:
            small = self.selected(student, batch_size)
        else:
            small = self.decode(self.noise(batch_size))
        x = self.framed(small)
        seen = self.seen(small, x)
        self.seconds["steer"] += time.perf_counter() - start
        return Proposal(queries=x, keep=len(x), context=self.current, seen=None if seen is x else seen)

    def chosen(self) -> int:
        """The transform whose answers so far have the highest class entropy, if it beats the ``query_box`` framing
        (the first) by more than twice the standard error of the difference; else that framing.

        Entropies from a hundred answers each differ by chance by a few hundredths of a nat: without the margin,
        a teacher that reads the plain framing well would get whichever near-equal candidate chance favoured."""
        entropies = [h.entropy() if h.total else -1.0 for h in self.answers]
        best = max(range(len(entropies)), key=lambda i: (entropies[i], -i))
        plain = self.answers[0]
        if not plain.total or best == 0:
            return best
        error = math.hypot(self.answers[best].entropy_error(), plain.entropy_error())
        return best if entropies[best] - entropies[0] > 2 * error else 0

    @property
    def transform(self) -> QueryTransform:
        """The transform of the batch being made (after adaptation: the chosen one)."""
        return self.transforms[self.current]

    def learn(self, student: nn.Module, proposal: Proposal, answers: torch.Tensor,
              replay: Callable[[int], AnsweredBatch]) -> AnsweredBatch:
        """The online step's batch: the fresh answers plus ``replay_batches`` batches replayed from the store."""
        self.answers[proposal.context].add(answers)
        n = len(proposal.queries)
        parts = [(proposal.kept, answers)] + [replay(n) for _ in range(self.config.replay_batches)]
        return torch.cat([x for x, _ in parts]), torch.cat([a for _, a in parts])

    def noise(self, n: int) -> torch.Tensor:
        """``n`` starting noises ``x_T ~ N(0, I)`` of the prior's shape."""
        shape = (self.prior.config.channels, self.prior.config.image_size, self.prior.config.image_size)
        return torch.randn((n, *shape), generator=self.rng, device=self.rng.device)

    def decode(self, x_T: torch.Tensor) -> torch.Tensor:
        """The prior's images (at its own size) for ``x_T``, without gradients."""
        with torch.no_grad(), autocast(self.precision, self.device):
            return self.prior.sample(x_T, steps=self.config.sampling_steps).float()

    def framed(self, small: torch.Tensor) -> torch.Tensor:
        """Prior images as the teacher sees them: the current transform (``query_box`` framing unless adapted)."""
        return self.transform(small, self.image_size, self.transform_rng)

    def seen(self, small: torch.Tensor, framed: torch.Tensor | None = None) -> torch.Tensor:
        """Prior images as the student learns them: in the plain ``query_box`` framing when ``learn_plain``, else
        as the teacher sees them (``framed``, if already made)."""
        if self.config.learn_plain and self.current != 0:
            return self.transforms[0](small, self.image_size, self.transform_rng)
        return self.framed(small) if framed is None else framed

    def selected(self, student: nn.Module, n: int) -> torch.Tensor:
        """``n`` of ``select_from * n`` decoded images, sampled without replacement with weights ``1 / (1 + n_c)``,
        ``c`` the class the student predicts for the image and ``n_c`` the teacher's answers of that class so far
        (in the chosen framing)."""
        candidates = self.decode(self.noise(self.config.select_from * n))
        was_training = student.training
        student.eval()
        with torch.no_grad(), autocast(self.precision, self.device):
            predicted = student(self.seen(candidates)).argmax(dim=1).cpu()
        student.train(was_training)
        answered = self.answers[self.current].counts
        counts = torch.zeros(int(max(len(answered), int(predicted.max()) + 1)), dtype=torch.float64)
        counts[:len(answered)] = answered.double()
        weights = 1.0 / (1.0 + counts[predicted])
        keep = torch.multinomial(weights, n, replacement=False, generator=self.select_rng)
        return candidates[keep.to(candidates.device)]

    def steered(self, student: nn.Module, n: int) -> torch.Tensor:
        """``n`` decoded images whose noise was moved to where ``student`` is most unsure (step 1)."""
        cfg = self.config
        x_T = self.noise(n).requires_grad_(True)
        optimizer = torch.optim.Adam([x_T], lr=cfg.steer_lr)
        radius = math.sqrt(x_T[0].numel())
        student.requires_grad_(False)
        try:
            for _ in range(cfg.steer_steps):
                with autocast(self.precision, self.device):
                    logits = student(self.seen(self.prior.sample(x_T, steps=cfg.sampling_steps,
                                                                 grad_last_k=cfg.grad_last_k)))
                logits = logits.float()
                objective = prediction_entropy(logits).mean() + cfg.balance_weight * marginal_entropy(logits)
                optimizer.zero_grad(set_to_none=True)
                (-objective).backward()
                optimizer.step()
                with torch.no_grad():
                    x_T.mul_(radius / x_T.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        finally:
            student.requires_grad_(True)
        return self.decode(x_T.detach())

    def sample(self, n: int) -> torch.Tensor:
        """``n`` plain (unsteered) prior samples at the teacher's size: the loop's fresh batches, if any."""
        return self.seen(self.decode(self.noise(n)))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state(), "select_rng": self.select_rng.get_state(),
                "transform_rng": self.transform_rng.get_state(),
                "seconds": dict(self.seconds), "proposed": self.proposed,
                "current": self.current, "choice": self.choice, "answers": [h.state_dict() for h in self.answers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])
        if "select_rng" in state:  # checkpoints written before selection existed never drew from it
            self.select_rng.set_state(state["select_rng"])
        if "transform_rng" in state:  # nor from the transforms' (only sharpening draws from it)
            self.transform_rng.set_state(state["transform_rng"])
        self.seconds = dict(state["seconds"])
        self.proposed, self.current, self.choice = state["proposed"], state["current"], state["choice"]
        for histogram, saved in zip(self.answers, state["answers"], strict=True):
            histogram.load_state_dict(saved)
