"""Query generators for data-free distillation: an exploration body and a thin exploitation head.

``x = head(body(z))``, ``z ~ N(0, I)``. TandemGAN trains the two parts with different objectives (the
body explores where student and teacher disagree, the head exploits where the student is confident),
so they are separate modules; DFME trains both together as one generator.

Three bodies, all for 1x28x28 and 3x32x32 images:

* ``"mlp"`` (default): ``z -> width -> 2*width -> C x R x R``, bilinearly upsampled to the image size,
  with batch norm. On a CPU it is ten times faster than a convolutional body (about 3 ms per 256
  images against 20-50 ms for a transposed-convolution body with 8-16 base channels, one thread), and
  every query passes through the generator, so it is what makes a million queries fit in minutes.
* ``"deconv"``: DCGAN-style, a linear map to ``(4w, S/4, S/4)`` and two x2 transposed convolutions,
  ending in ``w`` feature maps, for natural images or a GPU.
* ``"strokes"``: the MLP maps ``z`` to a few pen strokes (quadratic Bezier curves with their own pressure),
  drawn light on a dark background inside the central 20/28 of the frame. For classifiers of written
  characters: teachers with batch norm (ResNet-8, VGG-small) answer the MLP body's smooth grey images with
  one class, where they answer strokes with all ten (see :class:`StrokeBody`).

The head is one 3x3 convolution and ``tanh``: a local filter on the body's output, thin enough that
exploitation refines the samples rather than replacing what exploration found.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fedkd.errors import ConfigError

#: Image shapes the generators produce: (channels, size) for MNIST-like and CIFAR-like data.
SUPPORTED_SHAPES: tuple[tuple[int, int], ...] = ((1, 28), (3, 32))
GeneratorBodyKind = Literal["mlp", "deconv", "strokes"]
BODIES: tuple[str, ...] = ("mlp", "deconv", "strokes")


def latent_mlp(nz: int, width: int, out_features: int) -> nn.Sequential:
    """``z -> width -> 2 * width -> out_features`` with batch norm: the MLP bodies' shared trunk."""
    return nn.Sequential(
        nn.Linear(nz, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
        nn.Linear(width, 2 * width), nn.BatchNorm1d(2 * width), nn.LeakyReLU(0.2),
        nn.Linear(2 * width, out_features),
    )


class MLPBody(nn.Module):
    """``z (B, nz) -> (B, C, S, S)``: two hidden layers (``width``, ``2 * width``), a ``C x R x R`` pixel layer
    (``R = resolution``), bilinear upsampling to ``S`` and batch norm.

    A coarse ``R`` makes every sample spatially smooth. That matters for black-box teachers: a trained
    digit classifier calls almost all pixel noise one class, but answers smooth random images with all
    ten, so a generator that starts smooth gets informative answers from its first queries.
    """

    draws_images = False

    def __init__(self, nz: int, channels: int, image_size: int, width: int, resolution: int) -> None:
        super().__init__()
        self.shape, self.image_size = (channels, resolution, resolution), image_size
        self.layers = latent_mlp(nz, width, channels * resolution * resolution)
        self.norm = nn.BatchNorm2d(channels)
        self.out_channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.layers(z).view(len(z), *self.shape)
        if h.shape[-1] != self.image_size:
            h = F.interpolate(h, size=self.image_size, mode="bilinear", align_corners=False)
        return self.norm(h)


class StrokeBody(nn.Module):
    """``z (B, nz) -> (B, C, S, S)``: ``strokes`` pen strokes per image, drawn by a differentiable renderer.

    The MLP trunk (``latent_mlp``, as in :class:`MLPBody`) gives each stroke the three control points of a
    quadratic Bezier curve and a pen pressure. Each curve is sampled at ``points`` places (under a pixel apart),
    each sample splatted bilinearly onto the pixel grid with a weight of its share of the curve's length times the
    pressure, and the result blurred by a Gaussian pen (``PEN_SIGMA`` px). Ink saturates where strokes cross:
    ``ink = 1 - exp(-g * d)`` with ``d`` the blurred density (1 along the middle of a single stroke of pressure 1)
    and ``g = INK_GAIN``.
    The strokes come out continuous, two to four pixels wide, light on a dark background, and the gradient
    reaches every control point through the splatting weights. The control points stay inside the central
    ``BOX`` of the frame, where MNIST-style formats put the character (a fact of the input format, like
    ``aedm.query_box``; no data). The body returns ``atanh(2 * ink - 1)``, so that the identity head's tanh gives
    the image ``2 * ink - 1`` in [-1, 1].

    Why: on the teacher panel (``benchmarks/teacher_panel.py``), the ResNet-8 and VGG-small teachers answer the
    MLP body's first 2,000 images with one class on three of four teachers (answer entropy at most 0.10 nats), and
    TandemGAN's student stays at chance; they answer random strokes with entropy 1.4-1.7. A student taught only
    by a ResNet-8 teacher's labels of random strokes reached 0.56 of MNIST's test digits after 150k queries.
    """

    draws_images = True  # its output is already the image: the head starts as the identity
    BOX = 0.7  # the 20x20 box of a 28x28 frame, in the [-1, 1] coordinates of the image
    PEN_SIGMA = 1.0  # px
    INK_GAIN = 1.5

    def __init__(self, nz: int, channels: int, image_size: int, width: int, strokes: int = 3,
                 points: int = 32) -> None:
        super().__init__()
        self.channels, self.image_size, self.strokes = channels, image_size, strokes
        self.layers = latent_mlp(nz, width, strokes * 7)
        self.register_buffer("t", torch.linspace(0, 1, points).view(1, 1, points, 1), persistent=False)
        taps = torch.arange(5, dtype=torch.float32) - 2
        pen = torch.exp(-taps**2 / (2 * self.PEN_SIGMA**2))
        self.register_buffer("pen", pen / pen.sum(), persistent=False)
        self.out_channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.layers(z).view(len(z), self.strokes, 7)
        control = self.BOX * torch.tanh(2 * h[:, :, :6]).view(len(z), self.strokes, 3, 1, 2)
        pressure = 0.5 + 0.5 * torch.sigmoid(h[:, :, 6:])
        ink = self.draw(control, pressure)
        image = torch.atanh((2 * ink - 1).clamp(-0.999, 0.999))
        return image.expand(len(z), self.channels, self.image_size, self.image_size)

    def draw(self, control: torch.Tensor, pressure: torch.Tensor) -> torch.Tensor:
        """Ink in [0, 1), ``(n, 1, S, S)``, of the curves with ``control`` points ``(n, strokes, 3, 1, 2)`` in image
        coordinates and ``pressure`` ``(n, strokes, 1)``."""
        n, size, t = len(control), self.image_size, self.t
        curve = (1 - t) ** 2 * control[:, :, 0] + 2 * (1 - t) * t * control[:, :, 1] + t**2 * control[:, :, 2]
        pixels = (curve + 1) * (size - 1) / 2  # (n, strokes, points, 2): x, y in pixels
        step = (pixels[:, :, 1:] - pixels[:, :, :-1]).norm(dim=-1)
        length = torch.cat([step[:, :, :1], (step[:, :, 1:] + step[:, :, :-1]) / 2, step[:, :, -1:]], dim=2)
        weight = (length * pressure).reshape(n, -1)
        x, y = pixels[..., 0].reshape(n, -1), pixels[..., 1].reshape(n, -1)
        x0, y0 = x.detach().floor(), y.detach().floor()
        fx, fy = x - x0, y - y0
        x0, y0 = x0.long(), y0.long()
        density = control.new_zeros(n, size * size)
        for dx, dy, share in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy),
                              (1, 1, fx * fy)):
            index = (y0 + dy).clamp(0, size - 1) * size + (x0 + dx).clamp(0, size - 1)
            density = density.scatter_add(1, index, share * weight)
        density = F.conv2d(density.view(n, 1, size, size), self.pen.view(1, 1, 1, 5), padding=(0, 2))
        density = F.conv2d(density, self.pen.view(1, 1, 5, 1), padding=(2, 0))
        return 1 - torch.exp(-self.INK_GAIN * density * (2 * math.pi) ** 0.5 * self.PEN_SIGMA)


class DeconvBody(nn.Module):
    """``z (B, nz) -> (B, width, S, S)``: a linear map to ``(4w, S/4, S/4)`` and two x2 transposed convolutions."""

    draws_images = False

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
        self.head = GeneratorHead(self.body.out_channels, channels, identity=self.body.draws_images)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))
