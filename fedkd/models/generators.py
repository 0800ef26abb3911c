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
* ``"strokes"``: the MLP maps ``z`` to a few pen strokes (quadratic Bezier curves with their own width),
  drawn light on a dark background inside the central 20/28 of the frame. For classifiers of written
  characters: teachers with batch norm (ResNet-8, VGG-small) answer the MLP body's smooth grey images with
  one class, where they answer strokes with all ten (see :class:`StrokeBody`).

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
GeneratorBodyKind = Literal["mlp", "deconv", "strokes"]
BODIES: tuple[str, ...] = ("mlp", "deconv", "strokes")


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


class StrokeBody(nn.Module):
    """``z (B, nz) -> (B, C, S, S)``: ``strokes`` pen strokes per image, drawn by a differentiable renderer.

    The MLP of :class:`MLPBody` gives each stroke the three control points of a quadratic Bezier curve and a
    width. The curve is sampled at ``points`` places; a pixel's ink is ``exp(-d^2 / 2 sigma^2)`` with ``d`` its
    distance to the nearest sample, so strokes come out sharp, a few pixels wide (``sigma`` 0.55-1.4 px at
    28x28), on a dark background, and the gradient reaches every control point. The control points stay inside
    the central ``BOX`` of the frame, where MNIST-style formats put the character (a fact of the input format,
    like ``aedm.query_box``; no data). The output is ``4 * ink - 2``, which the head's tanh maps to about
    [-0.96, 0.96].

    Why: on the teacher panel (``benchmarks/teacher_panel.py``), ResNet-8 and VGG-small teachers answer the
    MLP body's first 2,000 images with one class (answer entropy 0.00-0.10 nats on three of four teachers),
    and TandemGAN's student then stays at chance; they answer this body's with entropy 1.2-1.95.
    """

    BOX = 0.7  # the 20x20 box of a 28x28 frame, in the [-1, 1] coordinates of the image
    SIGMA = (0.04, 0.10)  # stroke width range, in the same coordinates

    def __init__(self, nz: int, channels: int, image_size: int, width: int, strokes: int = 3,
                 points: int = 8) -> None:
        super().__init__()
        self.channels, self.image_size, self.strokes, self.points = channels, image_size, strokes, points
        self.layers = nn.Sequential(
            nn.Linear(nz, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
            nn.Linear(width, 2 * width), nn.BatchNorm1d(2 * width), nn.LeakyReLU(0.2),
            nn.Linear(2 * width, strokes * 7),
        )
        axis = torch.linspace(-1, 1, image_size)
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("grid", torch.stack([xx, yy], -1).view(-1, 2), persistent=False)
        self.register_buffer("t", torch.linspace(0, 1, points).view(1, 1, points, 1), persistent=False)
        self.out_channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = len(z)
        h = self.layers(z).view(n, self.strokes, 7)
        control = self.BOX * torch.tanh(2 * h[:, :, :6]).view(n, self.strokes, 3, 1, 2)
        low, high = self.SIGMA
        sigma = low + (high - low) * torch.sigmoid(h[:, :, 6])
        t = self.t
        curve = (1 - t) ** 2 * control[:, :, 0] + 2 * (1 - t) * t * control[:, :, 1] + t**2 * control[:, :, 2]
        samples = curve.reshape(n, self.strokes * self.points, 2)
        d2 = (self.grid.pow(2).sum(-1).view(1, -1, 1) - 2 * self.grid @ samples.transpose(1, 2)
              + samples.pow(2).sum(-1).unsqueeze(1)).clamp_min(0)
        spread = (2 * sigma.pow(2)).repeat_interleave(self.points, dim=1).unsqueeze(1)
        ink = torch.exp(-(d2 / spread).amin(dim=-1))
        image = (4 * ink - 2).view(n, 1, self.image_size, self.image_size)
        return image.expand(n, self.channels, self.image_size, self.image_size)


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
    """``features -> image in [-1, 1]``: one 3x3 convolution and tanh. With ``identity`` the convolution starts
    as the identity (a body that already draws images, ``"strokes"``, keeps them until exploitation moves it)."""

    def __init__(self, in_channels: int, channels: int, identity: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        if identity:
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.weight[:, :, 1, 1] = torch.eye(channels, in_channels)
                self.conv.bias.zero_()

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
        self.body: MLPBody | DeconvBody | StrokeBody
        if body == "mlp":
            self.body = MLPBody(nz, channels, image_size, width, resolution)
        elif body == "deconv":
            self.body = DeconvBody(nz, image_size, width)
        else:
            self.body = StrokeBody(nz, channels, image_size, width)
        self.head = GeneratorHead(self.body.out_channels, channels, identity=body == "strokes")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))
