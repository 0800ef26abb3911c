"""What the generator-based query sources share: the generator, its random streams, the exploration step.

TandemGAN and DFME differ in which parameters the exploration step moves and in whether an
exploitation step follows; everything else about their generators is here, written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from fedkd.distill.loop import AnsweredBatch
from fedkd.distill.losses import disagreement, marginal_entropy, zeroth_order_disagreement_gradient
from fedkd.errors import ConfigError
from fedkd.models.generators import GeneratorBodyKind, TandemGenerator
from fedkd.oracle import Oracle
from fedkd.seeding import seed_torch, torch_generator


@dataclass
class GeneratorSettings:
    """The generator and zeroth-order settings every generator-based method's config section starts with.

    ``nz``, ``body``, ``width`` and ``resolution`` shape the ``TandemGenerator``; ``zo_directions`` and
    ``zo_epsilon`` are DFME's forward-difference settings (``m = 1``, ``epsilon = 1e-3``), used in proba mode.
    """

    section: ClassVar[str] = "generator"
    nz: int = 64
    body: Literal["mlp", "deconv"] = "mlp"
    width: int = 256
    resolution: int = 7
    zo_directions: int = 1
    zo_epsilon: float = 1e-3

    def validate(self) -> None:
        for name in ("nz", "width", "resolution", "zo_directions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{self.section}.{name} must be >= 1, got {getattr(self, name)}")
        if not self.zo_epsilon > 0:
            raise ConfigError(f"{self.section}.zo_epsilon must be > 0, got {self.zo_epsilon}")


def exploration_queries(batch_size: int, mode: str, directions: int) -> int:
    """Queries one ``exploration_step`` spends: the batch, plus its perturbed copies in proba mode."""
    return batch_size if mode == "label" else (directions + 1) * batch_size


def exploration_step(
    generator: nn.Module,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    student: nn.Module,
    oracle: Oracle,
    z: torch.Tensor,
    directions: int,
    epsilon: float,
    rng: torch.Generator,
    balance_weight: float = 0.0,
) -> AnsweredBatch:
    """One ascent step on ``params`` for ``E D(S(x), T(x)) + lambda H(E S(x))``, ``x = G(z)``.

    Returns the batch the teacher answered. TandemGAN passes the body's parameters, DFME the whole
    generator's with ``lambda = 0``. Label mode spends ``len(z)`` queries and differentiates through the
    student only; proba mode spends ``(directions + 1) * len(z)`` and uses the zeroth-order estimate of
    ``grad_x D`` through the teacher.
    """
    x = generator(z)
    optimizer.zero_grad(set_to_none=True)
    if oracle.mode == "label":
        logits = student(x)
        answers = oracle(x)
        descent = -disagreement(logits, answers, "label").mean() - balance_weight * marginal_entropy(logits)
        descent.backward(inputs=params)
    else:
        grad, answers = zeroth_order_disagreement_gradient(student, oracle, x.detach(), directions, epsilon, rng)
        outputs, grads = [x], [-grad / len(x)]
        if balance_weight:
            outputs.append(-balance_weight * marginal_entropy(student(x)))
            grads.append(None)
        torch.autograd.backward(outputs, grads, inputs=params)
    optimizer.step()
    return x.detach(), answers


class GeneratorSynthesizer:
    """A ``TandemGenerator`` with its latent and perturbation streams, seeded under ``name``; subclasses add optimizers.

    ``sample`` draws from the whole generator without gradients; ``state_dict`` covers the generator,
    every optimizer in ``self.optimizers`` and both random streams, so a resumed run continues exactly.
    """

    def __init__(self, name: str, nz: int, body: GeneratorBodyKind, width: int, resolution: int,
                 channels: int, image_size: int, seed: int) -> None:
        seed_torch(seed, name, "init")
        self.nz = nz
        self.generator = TandemGenerator(nz, channels, image_size, body, width, resolution)
        self.latent = torch_generator(seed, name, "latent")
        self.directions = torch_generator(seed, name, "zo-directions")
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def latent_batch(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.nz, generator=self.latent)

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
