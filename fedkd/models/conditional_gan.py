"""A class-conditional DCGAN-style generator and a projection discriminator, sized for 8x8 to 32x32 images.

Generator (Radford et al., 2016, conditioned by concatenating a one-hot label to the noise):
``[z, onehot(y)] -> Linear -> widths[0] x s x s -> (ConvT 4x4 stride 2, BN, ReLU)* -> h -> Conv 3x3 -> tanh``,
with ``s = image_size / 2^(len(widths) - 1)``. ``h``, the last hidden feature map (``widths[-1]`` channels
at full resolution), is what dark-knowledge distillation matches between teacher and student.

Discriminator (Miyato & Koyama, 2018): spectrally normalised strided convolutions to a pooled feature
``phi(x)``, and ``D(x, y) = w^T phi(x) + embed(y)^T phi(x)``; trained with the hinge loss it is stable on
small data without tuning, and a frozen copy gives the distillation its adversarial term.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from fedkd.errors import ConfigError

if TYPE_CHECKING:
    from fedkd.generative.artifacts import Provenance

GAN_KIND = "conditional_gan"


@dataclass(frozen=True)
class GanConfig:
    """Architecture of a conditional generator/discriminator pair (the student changes ``widths`` only)."""

    image_size: int = 8
    channels: int = 1
    n_classes: int = 10
    z_dim: int = 32
    widths: tuple[int, ...] = (128, 64, 32)
    disc_widths: tuple[int, ...] = (64, 128)

    def validate(self) -> None:
        upsamples = len(self.widths) - 1
        if not self.widths or self.image_size % 2 ** upsamples:
            raise ConfigError(f"generator widths {list(self.widths)} need an image size divisible by "
                              f"2^{upsamples}, got {self.image_size}")
        if min(self.widths + self.disc_widths) < 1 or self.z_dim < 1 or self.n_classes < 1:
            raise ConfigError(f"widths, z_dim and n_classes must be >= 1, got {self}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> GanConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class ConditionalGenerator(nn.Module):
    """``G(z, y)``: images in [-1, 1] from noise ``z`` (B, z_dim) and class indices ``y`` (B,)."""

    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.start = config.image_size // 2 ** (len(config.widths) - 1)
        self.project = nn.Sequential(
            nn.Linear(config.z_dim + config.n_classes, config.widths[0] * self.start ** 2, bias=False),
            nn.Unflatten(1, (config.widths[0], self.start, self.start)),
            nn.BatchNorm2d(config.widths[0]), nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip(config.widths[:-1], config.widths[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.to_image = nn.Conv2d(config.widths[-1], config.channels, 3, padding=1)

    def forward_with_hidden(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, last hidden feature map h) for noise ``z`` and labels ``y``."""
        onehot = F.one_hot(y, self.config.n_classes).to(z.dtype)
        hidden = self.body(self.project(torch.cat([z, onehot], dim=1)))
        return torch.tanh(self.to_image(hidden)), hidden

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(z, y)[0]


class ConditionalDiscriminator(nn.Module):
    """``D(x, y)``: a realness score per image for class ``y`` (projection discriminator, spectral norm)."""

    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        config.validate()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(config.channels, config.disc_widths[0], 3, padding=1)),
                                   nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(config.disc_widths[:-1], config.disc_widths[1:], strict=True):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(config.disc_widths[-1], 1))
        self.embed = spectral_norm(nn.Embedding(config.n_classes, config.disc_widths[-1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.features(x).sum(dim=(2, 3))
        return self.linear(phi).squeeze(1) + (self.embed(y) * phi).sum(1)


def save_gan(generator: ConditionalGenerator, discriminator: ConditionalDiscriminator, out: str | Path,
             provenance: Provenance) -> Path:
    """Write both networks as one safetensors file plus ``meta.json`` (config and ``provenance``)."""
    from fedkd.generative.artifacts import save_model

    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    tensors.update({f"discriminator.{k}": v for k, v in discriminator.state_dict().items()})
    meta = {"kind": GAN_KIND, **provenance.to_dict(), "config": generator.config.to_dict(),
            "image_size": generator.config.image_size, "n_classes": generator.config.n_classes}
    return save_model(tensors, meta, out)


def load_gan(path: str | Path, expect: Mapping[str, Any] | None = None
             ) -> tuple[ConditionalGenerator, ConditionalDiscriminator]:
    """The frozen (eval mode, no weight gradients) generator and discriminator saved at ``path``."""
    from fedkd.generative.artifacts import load_model

    dataset = (expect or {}).get("dataset", "digits")
    tensors, meta = load_model(path, GAN_KIND, expect, how_to_train=f"fedkd gan train --dataset {dataset} --out {path}")
    config = GanConfig.from_dict(meta["config"])
    generator, discriminator = ConditionalGenerator(config), ConditionalDiscriminator(config)
    for prefix, net in (("generator.", generator), ("discriminator.", discriminator)):
        part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(part)
        except RuntimeError as err:
            raise ConfigError(f"GAN {str(path)!r}: weights do not fit its recorded config ({err})") from None
        net.eval().requires_grad_(False)
    return generator, discriminator
