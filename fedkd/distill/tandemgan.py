"""TandemGAN: black-box, data-free query synthesis by a generator body that explores and a head that exploits.

Queries are ``x = G_exploit(G_explore(z))``, ``z ~ N(0, I)`` (Hong, Huang & Chen, "Exploring and
Exploiting Data-Free Model Stealing", ECML-PKDD 2023). Per iteration of the shared loop
(``fedkd.distill.loop``):

* **exploration** (the body, ``theta_b``): move the queries to where student and teacher disagree,
  over all classes,

      max_{theta_b}  E_z D(S(x), T(x))  +  lambda * H(E_z S(x)),

  with ``D`` the loop's disagreement. Label mode: ``D = CE(S(x), y_T)``; the teacher's labels are
  constants, so the gradient flows through the student alone. Proba mode: ``D`` is the L1 between
  centred log-probabilities, and ``grad_x D`` is a forward-difference estimate through the teacher
  (``zeroth_order_disagreement_gradient``), back-propagated into the body. Either way the batch the
  teacher answered here is handed to the student, so the exploration queries also teach.
* **exploitation** (the head, ``theta_h``; no teacher query): make the student confident on fresh
  samples, again over all classes,

      min_{theta_h}  E_z H(S(x))  -  lambda * H(E_z S(x)).

* the loop then takes its student steps on fresh queries from the whole generator.

``H(E_z S(x))``, the entropy of the batch's mean student prediction, is fedkd's addition (DAFL's
information-entropy term, Chen et al. 2019); ``balance_weight = 0`` removes it. Without it, with a
label-only teacher, the generator settles on the two or three classes the teacher gives to its first
samples and the student never hears of the others.

Both parts train with RMSProp. The exploration step is the dangerous one: each ascent step turns the
samples into adversarial examples of the current student, which the teacher labels faithfully but
which teach little about real images. A small ``explore_lr`` (3e-5, against 1e-3 for the head) keeps
it a slow drift towards unexplored regions. The body's default is a fast MLP
with a 7x7 output upsampled to the image size (see ``fedkd.models.generators``), latent size 64.

>>> import torch
>>> from fedkd.oracle import ModelOracle
>>> teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
>>> student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
>>> tandem = TandemGAN(TandemGANConfig(width=32), channels=1, image_size=28, seed=0)
>>> proposal = tandem.propose(student, batch_size=16, mode="label")
>>> x, labels = tandem.learn(student, proposal, ModelOracle(teacher, mode="label")(proposal.queries), replay=None)
>>> x.shape, labels.shape, tandem.sample(4).shape
(torch.Size([16, 1, 28, 28]), torch.Size([16]), torch.Size([4, 1, 28, 28]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from fedkd.distill.loop import AnsweredBatch, Proposal
from fedkd.distill.losses import marginal_entropy, prediction_entropy
from fedkd.distill.synthesis import GeneratorSettings, GeneratorSynthesizer, exploration_queries, exploration_step
from fedkd.errors import ConfigError


@dataclass
class TandemGANConfig(GeneratorSettings):
    """TandemGAN's hyper-parameters (the ``[tandemgan]`` config section): the generator's, plus the two steps'."""

    section: ClassVar[str] = "tandemgan"
    explore_lr: float = 3e-5
    exploit_lr: float = 1e-3
    balance_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        for name in ("explore_lr", "exploit_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"tandemgan.{name} must be > 0, got {getattr(self, name)}")
        if self.balance_weight < 0:
            raise ConfigError(f"tandemgan.balance_weight must be >= 0, got {self.balance_weight}")


class TandemGAN(GeneratorSynthesizer):
    """The TandemGAN query synthesizer; see the module docstring for the objectives."""

    def __init__(self, config: TandemGANConfig, channels: int, image_size: int, seed: int,
                 device: str | torch.device = "cpu") -> None:
        super().__init__("tandemgan", config, channels, image_size, seed, device)
        self.body_params = list(self.generator.body.parameters())
        self.head_params = list(self.generator.head.parameters())
        self.optimizers = {"explore": torch.optim.RMSprop(self.body_params, lr=config.explore_lr),
                           "exploit": torch.optim.RMSprop(self.head_params, lr=config.exploit_lr)}

    def queries_per_step(self, batch_size: int, mode: str) -> int:
        return exploration_queries(batch_size, mode, self.config.zo_directions)

    def learn(self, student: nn.Module, proposal: Proposal, answers: torch.Tensor, replay: object) -> AnsweredBatch:
        """The exploration step on the body from ``answers``, then the exploitation step on the head."""
        answered = exploration_step(self.generator, self.body_params, self.optimizers["explore"], student, proposal,
                                    answers, self.config.zo_epsilon, self.config.balance_weight)
        self.exploitation_step(student, len(answered[0]))
        return answered

    def exploitation_step(self, student: nn.Module, batch_size: int) -> None:
        """One descent step on the head for ``E H(S(x)) - lambda H(E S(x))``; no teacher query."""
        with torch.no_grad():
            features = self.generator.body(self.latent_batch(batch_size))
        logits = student(self.generator.head(features))
        loss = prediction_entropy(logits).mean() - self.config.balance_weight * marginal_entropy(logits)
        self.optimizers["exploit"].zero_grad(set_to_none=True)
        loss.backward(inputs=self.head_params)
        self.optimizers["exploit"].step()
