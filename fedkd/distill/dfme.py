"""DFME: data-free model extraction with one generator trained only to find disagreement (the baseline).

Truong et al., "Data-Free Model Extraction", CVPR 2021. One generator ``x = G(z)`` plays a min-max
game with the student over the disagreement ``D`` of the shared loop:

    max_G  E_z D(S(G(z)), T(G(z)))        min_S  E_z D(S(G(z)), T(G(z)))

In proba mode ``D`` is the L1 between centred log-probabilities and the generator's gradient through
the teacher is the forward-difference estimate with ``m`` random directions (the paper's setting,
``m = 1``, ``epsilon = 1e-3``); in label mode it is the cross-entropy to the teacher's labels, with the
gradient through the student only. Compared with TandemGAN it has no exploitation head: the whole
generator takes the exploration step, with Adam at the paper's generator learning rate. The generator
architecture is TandemGAN's, so the two differ in how the generator learns and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from fedkd.distill.loop import AnsweredBatch, Proposal
from fedkd.distill.synthesis import GeneratorSettings, GeneratorSynthesizer, exploration_queries, exploration_step
from fedkd.errors import ConfigError


@dataclass
class DFMEConfig(GeneratorSettings):
    """DFME's hyper-parameters (the ``[dfme]`` config section): the generator's, plus its Adam learning rate."""

    section: ClassVar[str] = "dfme"
    lr: float = 1e-4

    def validate(self) -> None:
        super().validate()
        if not self.lr > 0:
            raise ConfigError(f"dfme.lr must be > 0, got {self.lr}")


class DFME(GeneratorSynthesizer):
    """The DFME query synthesizer: one generator, one exploration step per iteration."""

    def __init__(self, config: DFMEConfig, channels: int, image_size: int, seed: int,
                 device: str | torch.device = "cpu") -> None:
        super().__init__("dfme", config, channels, image_size, seed, device)
        self.params = list(self.generator.parameters())
        self.optimizers = {"generator": torch.optim.Adam(self.params, lr=config.lr)}

    def queries_per_step(self, batch_size: int, mode: str) -> int:
        return exploration_queries(batch_size, mode, self.config.zo_directions)

    def learn(self, student: nn.Module, proposal: Proposal, answers: torch.Tensor, replay: object) -> AnsweredBatch:
        """The exploration step on the whole generator from ``answers``."""
        return exploration_step(self.generator, self.params, self.optimizers["generator"], student, proposal,
                                answers, self.config.zo_epsilon)
