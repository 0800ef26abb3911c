"""Query generators for data-free distillation: an exploration body and a thin exploitation head.

``x = head(body(z))``, ``z ~ N(0, I)``. TandemGAN trains the two parts with different objectives (the
body explores where student and teacher disagree, the head exploits where the student is confident),
so they are separate modules; DFME trains both together as one generator.

Two bodies, both for 1x28x28 and 3x32x32 images:

* ``"mlp"`` (default): ``z -> width -> 2*width -> C x R x R``, bilinearly upsampled to the image size,
  with batch norm. On a CPU it is ten times faster than a convolutional body (about 3 ms per 256
  images against 20-50 ms for a transposed-convolution body with 8-16 base channels, one thread), and
  every query passes through the generator, so it is what makes a million queries fit in minutes.
* ``"deconv"``: DCGAN-style, a linear map to ``(4w, S/4, S/4)`` and two x2 transposed convolutions,
  ending in ``w`` feature maps, for natural images or a GPU.

The head is one 3x3 convolution and ``tanh``: a local filter on the body's output, thin enough that
exploitation refines the samples rather than replacing what exploration found.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fedkd.errors import ConfigError

#: Image shapes the generators produce: (channels, size) for MNIST-like and CIFAR-like data.
SUPPORTED_SHAPES: tuple[tuple[int, int], ...] = ((1, 28), (3, 32))
GeneratorBodyKind = Literal["mlp", "deconv"]
BODIES: tuple[str, ...] = ("mlp", "deconv")


class MLPBody(nn.Module):
    """``z (B, nz) -> (B, C, S, S)``: two hidden layers (``width``, ``2 * width``), a ``C x R x R`` pixel layer
    (``R = resolution``), bilinear upsampling to ``S`` and batch norm.

    A coarse ``R`` makes every sample spatially smooth. That matters for black-box teachers: a trained
    digit classifier calls almost all pixel noise one class, but answers smooth random images with all
    ten, so a generator that starts smooth gets informative answers from its first queries.
    """

    def __init__(self, nz: int, channels: int, image_size: int, width: int, resolution: int) -> None:
        super().__init__()
        self.shape, self.image_size = (channels, resolution, resolution), image_size
        self.layers = nn.Sequential(
            nn.Linear(nz, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
            nn.Linear(width, 2 * width), nn.BatchNorm1d(2 * width), nn.LeakyReLU(0.2),
            nn.Linear(2 * width, channels * resolution * resolution),
        )
        self.norm = nn.BatchNorm2d(channels)
        self.out_channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.layers(z).view(len(z), *self.shape)
        if h.shape[-1] != self.image_size:
            h = F.interpolate(h, size=self.image_size, mode="bilinear", align_corners=False)
        return self.norm(h)


class DeconvBody(nn.Module):
    """``z (B, nz) -> (B, width, S, S)``: a linear map to ``(4w, S/4, S/4)`` and two x2 transposed convolutions."""

    def __init__(self, nz: int, image_size: int, width: int) -> None:
        super().__init__()
        self.width, self.base = width, image_size // 4
        flat = 4 * width * self.base**2
        self.project = nn.Sequential(nn.Linear(nz, flat), nn.BatchNorm1d(flat), nn.LeakyReLU(0.2))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
        )
        self.out_channels = width

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(len(z), 4 * self.width, self.base, self.base))


class GeneratorHead(nn.Module):
    """``features -> image in [-1, 1]``: one 3x3 convolution and tanh."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(h))


class TandemGenerator(nn.Module):
    """A generator split into an exploration ``body`` and an exploitation ``head``.

    ``width`` is the first hidden layer of the ``"mlp"`` body, or the channels of the last stage of the
    ``"deconv"`` body.

    >>> g = TandemGenerator(nz=32, channels=1, image_size=28, body="mlp", width=64)
    >>> g(torch.randn(4, 32)).shape
    torch.Size([4, 1, 28, 28])
    """

    def __init__(self, nz: int, channels: int, image_size: int, body: GeneratorBodyKind = "mlp", width: int = 256,
                 resolution: int = 7) -> None:
        super().__init__()
        if (channels, image_size) not in SUPPORTED_SHAPES:
            raise ConfigError(f"no generator for {channels}x{image_size}x{image_size} images; "
                              f"supported (channels, size): {SUPPORTED_SHAPES}")
        if nz < 1 or width < 1:
            raise ConfigError(f"generator nz and width must be positive, got nz={nz}, width={width}")
        if body not in BODIES:
            raise ConfigError(f"unknown generator body {body!r}; choose one of {BODIES}")
        self.nz = nz
        self.body: MLPBody | DeconvBody = (MLPBody(nz, channels, image_size, width, resolution) if body == "mlp"
                                           else DeconvBody(nz, image_size, width))
        self.head = GeneratorHead(self.body.out_channels, channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))
