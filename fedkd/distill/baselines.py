"""Reference query sources for the shared loop: uniform noise (the floor) and real unlabeled data (the ceiling).

* ``RandomNoise``: ``x ~ U(-1, 1)^{C x H x W}``, what a user with no data and no generator can ask. A
  trained teacher answers most such images with one or two classes, so this shows how much a
  synthesizer adds.
* ``RealData``: images drawn with replacement from a pool the user holds, unlabeled, from the
  teacher's own distribution (the teacher's training split). The teacher labels them through the
  oracle, so it is ordinary distillation on transfer data: what a user *with* data would get, at the
  same query count.

Neither learns, so neither proposes a batch of its own and every query goes to the student.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fedkd.distill.loop import AnsweredBatch, Proposal
from fedkd.errors import DataError, FedkdError
from fedkd.seeding import torch_generator


class FixedSource:
    """A query source that does not learn: it proposes nothing; subclasses draw ``sample`` from ``self.rng``."""

    store_training = None

    def __init__(self, seed: int, name: str, device: str | torch.device = "cpu") -> None:
        self.rng = torch_generator(seed, name, device=device)

    def queries_per_step(self, batch_size: int, mode: str) -> int:
        return 0

    def propose(self, student: nn.Module, batch_size: int, mode: str) -> None:
        return None

    def learn(self, student: nn.Module, proposal: Proposal, answers: torch.Tensor, replay: object) -> AnsweredBatch:
        raise FedkdError(f"{type(self).__name__} proposes no batch of its own, so it has nothing to learn from")

    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])


class RandomNoise(FixedSource):
    """Uniform noise in the image range [-1, 1]."""

    def __init__(self, channels: int, image_size: int, seed: int, device: str | torch.device = "cpu") -> None:
        super().__init__(seed, "random-noise", device)
        self.shape = (channels, image_size, image_size)

    def sample(self, n: int) -> torch.Tensor:
        return torch.rand((n, *self.shape), generator=self.rng, device=self.rng.device) * 2.0 - 1.0


class RealData(FixedSource):
    """Unlabeled images ``pool`` (N, C, H, W) in [-1, 1], drawn uniformly with replacement; kept on ``device``."""

    def __init__(self, pool: torch.Tensor, seed: int, device: str | torch.device = "cpu") -> None:
        if pool.dim() != 4 or len(pool) == 0:
            raise DataError(f"a real-data pool must be a non-empty (N, C, H, W) tensor, got shape {tuple(pool.shape)}")
        super().__init__(seed, "real-data", device)
        self.pool = pool.to(device)

    def sample(self, n: int) -> torch.Tensor:
        return self.pool[torch.randint(len(self.pool), (n,), generator=self.rng, device=self.rng.device)]
