"""Training a diffusion prior (or a diffusion teacher) with the DDPM objective, and its command's work.

Adam on ``E ||eps_theta(x_t, t) - eps||^2`` over mini-batches of the dataset's training split, with an
exponential moving average (EMA) of the weights kept as the model that is saved: on a few thousand steps
the EMA's samples are far cleaner than the raw weights' (Ho et al., 2020, used the same device).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from fedkd.errors import ConfigError
from fedkd.generative.artifacts import Provenance
from fedkd.models.diffusion import DiffusionConfig, DiffusionModel
from fedkd.precision import autocast
from fedkd.progress import progress
from fedkd.seeding import seed_torch, torch_generator


@dataclass(frozen=True)
class PriorTraining:
    """Optimisation settings of ``train_prior`` (the defaults train the shipped digits prior)."""

    steps: int = 4000
    batch_size: int = 128
    lr: float = 2e-3
    ema_decay: float = 0.995
    test_fraction: float = 0.2

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"prior training needs steps, batch_size >= 1, lr > 0 and 0 <= ema_decay < 1, "
                              f"got {self}")


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model``, parameter by parameter (buffers copied)."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def train_prior(x: torch.Tensor, config: DiffusionConfig, settings: PriorTraining, seed: int,
                y: torch.Tensor | None = None, precision: str = "fp32") -> DiffusionModel:
    """Fit a fresh ``DiffusionModel(config)`` to images ``x`` (labels ``y`` if conditional); returns the EMA model.

    The learning rate decays by a cosine from ``lr`` to 0 over the run. The model and the random stream live on
    ``x``'s device (initialised on the CPU, so the same weights everywhere); its forward passes run in
    ``precision`` (``fedkd.precision``), the loss in float32.
    """
    settings.validate()
    seed_torch(seed, "prior", "init")
    model = DiffusionModel(config).to(x.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.steps)
    gen = torch_generator(seed, "prior", "train", device=x.device)
    model.train()
    bar = progress(range(settings.steps), desc="prior")
    for _ in bar:
        idx = torch.randint(0, len(x), (settings.batch_size,), generator=gen, device=gen.device)
        with autocast(precision, x.device):
            loss = model.training_loss(x[idx], gen, None if y is None else y[idx]).float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_update(ema, model, settings.ema_decay)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return ema.eval()


def train_prior_on_dataset(dataset: str, config: DiffusionConfig, settings: PriorTraining, seed: int,
                           command: str, device: str = "cpu",
                           precision: str = "fp32") -> tuple[DiffusionModel, Provenance]:
    """Train on ``device`` in ``precision`` on the training split of a registered dataset; returns the model and its
    provenance."""
    from fedkd.data import load_dataset

    data = load_dataset(dataset)
    if (data.image_size, data.channels) != (config.image_size, config.channels):
        raise ConfigError(f"dataset {dataset!r} has {data.channels}x{data.image_size}x{data.image_size} images; "
                          f"the prior is configured for {config.channels}x{config.image_size}x{config.image_size}")
    train, _ = data.split(settings.test_fraction, seed)
    x, y = train.tensors(device)
    start = time.perf_counter()
    model = train_prior(x, config, settings, seed, y if config.n_classes else None, precision)
    provenance = Provenance(command=command, dataset=dataset, seed=seed,
                            training={**settings.__dict__, "split_seed": seed,
                                      "train_seconds": round(time.perf_counter() - start, 1)})
    return model, provenance
