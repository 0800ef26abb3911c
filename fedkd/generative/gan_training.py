"""Adversarial training of the conditional GAN teacher (hinge loss, Adam), and its command's work.

Per step, with real (x, y) from the training split and z ~ N(0, I), y_fake uniform:

    L_D = E[relu(1 - D(x, y))] + E[relu(1 + D(G(z, y_fake), y_fake))]
    L_G = -E[D(G(z, y_fake), y_fake)]

(Lim & Ye, 2017; Miyato et al., 2018). Adam with beta1 = 0 (no momentum, as is usual with spectral norm):
on the digits, DCGAN's beta1 = 0.5 reached a far worse FID-like in the same number of steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedkd.errors import ConfigError
from fedkd.generative.artifacts import Provenance
from fedkd.models.conditional_gan import ConditionalDiscriminator, ConditionalGenerator, GanConfig
from fedkd.progress import progress
from fedkd.seeding import seed_torch, torch_generator


@dataclass(frozen=True)
class GanTraining:
    """Optimisation settings of ``train_gan`` (the defaults train the shipped digits teacher)."""

    steps: int = 4000
    batch_size: int = 64
    lr: float = 4e-4
    test_fraction: float = 0.2

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"GAN training needs steps, batch_size >= 1 and lr > 0, got {self}")


def train_gan(x: torch.Tensor, y: torch.Tensor, config: GanConfig, settings: GanTraining,
              seed: int) -> tuple[ConditionalGenerator, ConditionalDiscriminator]:
    """Fit a fresh conditional generator and discriminator to images ``x`` with labels ``y``; both in eval mode.

    Both networks and the random stream live on ``x``'s device (initialised on the CPU, so the same weights).
    """
    settings.validate()
    seed_torch(seed, "gan", "init")
    generator = ConditionalGenerator(config).to(x.device)
    discriminator = ConditionalDiscriminator(config).to(x.device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=settings.lr, betas=(0.0, 0.999))
    gen = torch_generator(seed, "gan", "train", device=x.device)
    bar = progress(range(settings.steps), desc="gan")
    for _ in bar:
        idx = torch.randint(0, len(x), (settings.batch_size,), generator=gen, device=gen.device)
        z = torch.randn(settings.batch_size, config.z_dim, generator=gen, device=gen.device)
        y_fake = torch.randint(0, config.n_classes, (settings.batch_size,), generator=gen, device=gen.device)
        fake = generator(z, y_fake)
        loss_d = (F.relu(1 - discriminator(x[idx], y[idx])).mean()
                  + F.relu(1 + discriminator(fake.detach(), y_fake)).mean())
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = -discriminator(fake, y_fake).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        bar.set_postfix(d=f"{loss_d.item():.3f}", g=f"{loss_g.item():.3f}", refresh=False)
    return generator.eval(), discriminator.eval()


def train_gan_on_dataset(dataset: str, config: GanConfig, settings: GanTraining, seed: int, command: str,
                         device: str = "cpu") -> tuple[ConditionalGenerator, ConditionalDiscriminator, Provenance]:
    """Train on ``device`` on the training split of a registered dataset; returns both networks and provenance."""
    from fedkd.data import load_dataset

    data = load_dataset(dataset)
    if (data.image_size, data.channels, data.n_classes) != (config.image_size, config.channels, config.n_classes):
        raise ConfigError(f"dataset {dataset!r} has {data.n_classes} classes of {data.channels}x{data.image_size}"
                          f"x{data.image_size} images; the GAN is configured for {config.n_classes} classes of "
                          f"{config.channels}x{config.image_size}x{config.image_size}")
    train, _ = data.split(settings.test_fraction, seed)
    start = time.perf_counter()
    generator, discriminator = train_gan(*train.tensors(device), config, settings, seed)
    provenance = Provenance(command=command, dataset=dataset, seed=seed,
                            training={**settings.__dict__, "split_seed": seed,
                                      "train_seconds": round(time.perf_counter() - start, 1)})
    return generator, discriminator, provenance
