"""What the generator-based query sources share: the generator, its random streams, the exploration step.

TandemGAN and DFME differ in which parameters the exploration step moves and in whether an
exploitation step follows; everything else about their generators is here, written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from fedkd.distill.loop import AnsweredBatch, Proposal
from fedkd.distill.losses import (
    disagreement,
    marginal_entropy,
    zeroth_order_disagreement_gradient,
    zeroth_order_probes,
)
from fedkd.distill.store import StoreStageSettings
from fedkd.errors import ConfigError
from fedkd.models.generators import GeneratorBodyKind, TandemGenerator
from fedkd.seeding import seed_torch, torch_generator


@dataclass
class GeneratorSettings(StoreStageSettings):
    """The generator and zeroth-order settings every generator-based method's config section starts with.

    ``nz``, ``body``, ``width`` and ``resolution`` shape the ``TandemGenerator``; ``zo_directions`` and
    ``zo_epsilon`` are DFME's forward-difference settings (``m = 1``, ``epsilon = 1e-3``), used in proba mode.
    With ``offline_epochs`` > 0 every answered query is kept and the student trains on all of them again once the
    budget is spent (the store stage, ``fedkd.distill.store.StoreStageSettings``); online, it sees each answer once,
    on queries the generator has since moved away from. Off by default: in one round it moved ``fedtandem`` by +6
    and -9 points on two seeds (README, *fedtandem in one round*).
    """

    section: ClassVar[str] = "generator"
    nz: int = 64
    body: GeneratorBodyKind = "mlp"
    width: int = 256
    resolution: int = 7
    zo_directions: int = 1
    zo_epsilon: float = 1e-3

    def validate(self) -> None:
        self.validate_store_stage(self.section)
        for name in ("nz", "width", "resolution", "zo_directions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{self.section}.{name} must be >= 1, got {getattr(self, name)}")
        if not self.zo_epsilon > 0:
            raise ConfigError(f"{self.section}.zo_epsilon must be > 0, got {self.zo_epsilon}")


def exploration_queries(batch_size: int, mode: str, directions: int) -> int:
    """Queries one ``exploration_step`` spends: the batch, plus its perturbed copies in proba mode."""
    return batch_size if mode == "label" else (directions + 1) * batch_size


def propose_exploration(generator: nn.Module, z: torch.Tensor, mode: str, directions: int, epsilon: float,
                        rng: torch.Generator) -> Proposal:
    """The exploration batch ``x = G(z)`` as queries: ``x`` alone in label mode, with its zeroth-order probes in
    proba mode (``exploration_queries`` of them)."""
    with torch.no_grad():
        x = generator(z)
    if mode == "label":
        return Proposal(queries=x, keep=len(x), context=(z, None))
    queries, u = zeroth_order_probes(x, directions, epsilon, rng)
    return Proposal(queries=queries, keep=len(x), context=(z, u))


def exploration_step(
    generator: nn.Module,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    student: nn.Module,
    proposal: Proposal,
    answers: torch.Tensor,
    epsilon: float,
    balance_weight: float = 0.0,
) -> AnsweredBatch:
    """One ascent step on ``params`` for ``E D(S(x), T(x)) + lambda H(E S(x))``, ``x = G(z)``.

    Returns the batch the teacher answered. TandemGAN passes the body's parameters, DFME the whole
    generator's with ``lambda = 0``. Label mode differentiates through the student only; proba mode uses the
    zeroth-order estimate of ``grad_x D`` through the teacher from the probes' answers. ``x`` is recomputed from
    the proposal's latents with the generator as it is now: in a wave, the generator may have moved since the
    proposal was answered, and the answers are then those of slightly different images (stale by the updates
    in between).
    """
    z, u = proposal.context
    n = len(z)
    x = generator(z)
    optimizer.zero_grad(set_to_none=True)
    if u is None:
        logits = student(x)
        descent = -disagreement(logits, answers, "label").mean() - balance_weight * marginal_entropy(logits)
        descent.backward(inputs=params)
    else:
        grad = zeroth_order_disagreement_gradient(student, proposal.queries, answers, u, epsilon)
        outputs, grads = [x], [-grad / n]
        if balance_weight:
            outputs.append(-balance_weight * marginal_entropy(student(x)))
            grads.append(None)
        torch.autograd.backward(outputs, grads, inputs=params)
    optimizer.step()
    return proposal.queries[:n], answers[:n]


class GeneratorSynthesizer:
    """A ``TandemGenerator`` shaped by ``config`` (a ``GeneratorSettings``) with its latent and perturbation
    streams, seeded under ``name``, and the store stage ``config`` asks for; subclasses add optimizers and ``learn``.

    The generator and both streams live on ``device`` (initialised on the CPU from the seed, then moved, so
    the weights are the same on every device). ``sample`` draws from the whole generator without gradients;
    ``state_dict`` covers the generator,
    every optimizer in ``self.optimizers`` and both random streams, so a resumed run continues exactly.
    """

    def __init__(self, name: str, config: GeneratorSettings, channels: int, image_size: int, seed: int,
                 device: str | torch.device = "cpu") -> None:
        config.validate()
        seed_torch(seed, name, "init")
        self.config, self.nz = config, config.nz
        self.generator = TandemGenerator(config.nz, channels, image_size, config.body, config.width,
                                         config.resolution).to(device)
        self.latent = torch_generator(seed, name, "latent", device=device)
        self.directions = torch_generator(seed, name, "zo-directions", device=device)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.store_training = config.store_training() if config.offline_epochs else None

    def latent_batch(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.nz, generator=self.latent, device=self.latent.device)

    def propose(self, student: nn.Module, batch_size: int, mode: str) -> Proposal:
        """The exploration batch of ``batch_size`` fresh latents (``propose_exploration``)."""
        settings = self.config
        return propose_exploration(self.generator, self.latent_batch(batch_size), mode, settings.zo_directions,
                                   settings.zo_epsilon, self.directions)

    def sample(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            return self.generator(self.latent_batch(n))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(),
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "latent": self.latent.get_state(), "directions": self.directions.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.latent.set_state(state["latent"])
        self.directions.set_state(state["directions"])
