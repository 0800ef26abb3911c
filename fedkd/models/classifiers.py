"""Small image classifiers sized for a CPU, built by name from (channels, image size, classes).

Every classifier splits into ``features(x)`` (the penultimate embedding, ``feature_dim`` wide) and a
linear ``head``, so ``forward(x) = head(features(x))`` gives logits (B, n_classes). Distillers use the
embedding for feature losses and the FID-style metric; federated code uses the logits. All of them
accept 8x8, 28x28 and 32x32 inputs; how each adapts to small images is said in its docstring.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from fedkd.errors import ConfigError


class Classifier(nn.Module):
    """A feature extractor ``body`` (images -> (B, feature_dim)) plus a linear ``head`` to the logits."""

    feature_dim: int

    def __init__(self, body: nn.Module, feature_dim: int, n_classes: int) -> None:
        super().__init__()
        self.body = body
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(Classifier):
    """Flattened pixels -> 256 -> 128 (ReLU) -> classes. Any image size; the embedding is the 128-unit layer."""

    def __init__(self, in_channels: int, image_size: int, n_classes: int, hidden: tuple[int, int] = (256, 128)) -> None:
        body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, hidden[0]), nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
        )
        super().__init__(body, hidden[1], n_classes)


class MaxPool2x2(nn.Module):
    """2x2 max-pooling with stride 2, the values of ``nn.MaxPool2d(2)``, computed faster when no gradient is needed.

    Why: on a CPU, ``max_pool2d`` was the largest single cost of answering queries in a 100-client round (more
    than the convolutions). Without autograd, two ``torch.maximum`` over strided views give the same values 10-20x
    faster (a max is exact, so logits are bit-identical). With autograd it calls ``max_pool2d``, whose backward is
    the faster one, so training is unchanged. No parameters or buffers: checkpoints of nets built with
    ``nn.MaxPool2d(2)`` load unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, 2)
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
        rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def _flat_size(body: nn.Module, in_channels: int, image_size: int) -> int:
    """Width of ``body``'s flattened output for one image, found by a forward pass of zeros (draws no randomness)."""
    with torch.no_grad():
        return int(body(torch.zeros(1, in_channels, image_size, image_size)).flatten(1).shape[1])


class LeNet5(Classifier):
    """LeNet-5 (LeCun et al., 1998): conv5x5(6) - maxpool - conv5x5(16) - maxpool - 120 - 84, ReLU activations.

    conv1 uses 'same' padding (the usual MNIST variant: 28x28 -> 14 -> 10 -> 5, i.e. 16x5x5 = 400 inputs to
    the first dense layer). On images under 20 px, such as the 8x8 digits, conv2 also pads by 2 so the map
    does not vanish (8 -> 4 -> 4 -> 2); the first dense layer is sized from the resulting map.
    The embedding is the 84-unit layer.
    """

    def __init__(self, in_channels: int, image_size: int, n_classes: int) -> None:
        conv2_padding = 0 if image_size >= 20 else 2
        convs = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), MaxPool2x2(),
            nn.Conv2d(6, 16, 5, padding=conv2_padding), nn.ReLU(), MaxPool2x2(),
            nn.Flatten(),
        )
        flat = _flat_size(convs, in_channels, image_size)
        body = nn.Sequential(convs, nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        super().__init__(body, 84, n_classes)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class VGGSmall(Classifier):
    """A VGG-style net: three blocks of two conv3x3-BN-ReLU layers (32, 64, 128 channels), each ending in maxpool 2.

    Global average pooling after the last block makes it size-agnostic (8x8 -> 1x1, 28x28 -> 3x3, 32x32 -> 4x4);
    the embedding is the 128 pooled channels.
    """

    def __init__(self, in_channels: int, image_size: int, n_classes: int,
                 widths: tuple[int, ...] = (32, 64, 128)) -> None:
        layers: list[nn.Module] = []
        c_in = in_channels
        for width in widths:
            layers += _conv_bn(c_in, width) + _conv_bn(width, width) + [MaxPool2x2()]
            c_in = width
        body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        super().__init__(body, widths[-1], n_classes)


class BasicBlock(nn.Module):
    """The two-conv residual block of He et al. (2016): y = ReLU(BN(conv(ReLU(BN(conv x)))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(Classifier):
    """A CIFAR-style ResNet: 3x3 stem, stages of basic blocks (stride 1 first, then 2), global average pooling.

    No stem max-pool, so 8x8 inputs keep a spatial map through every stage. ResNet-8 has stages (16, 32, 64)
    with one block each (6n + 2 layers, n = 1); ResNet-18-narrow has the ResNet-18 layout (4 stages x 2 blocks)
    at a quarter of its width, (16, 32, 64, 128). The embedding is the pooled last stage.
    """

    def __init__(self, in_channels: int, n_classes: int, widths: tuple[int, ...], blocks_per_stage: int) -> None:
        layers: list[nn.Module] = _conv_bn(in_channels, widths[0])
        c_in = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(c_in, width, stride))
                c_in = width
        body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        super().__init__(body, widths[-1], n_classes)


_BUILDERS: dict[str, Callable[[int, int, int], Classifier]] = {
    "mlp": MLP,
    "lenet5": LeNet5,
    "vgg_small": VGGSmall,
    "resnet8": lambda c, s, k: ResNet(c, k, widths=(16, 32, 64), blocks_per_stage=1),
    "resnet18_narrow": lambda c, s, k: ResNet(c, k, widths=(16, 32, 64, 128), blocks_per_stage=2),
}

CLASSIFIERS: dict[str, str] = {
    "mlp": "two hidden layers (256, 128), any image size",
    "lenet5": "LeNet-5 with ReLU; 'same' padding keeps 8x8 inputs alive",
    "vgg_small": "VGG-style, 3 blocks of 2 conv3x3-BN (32/64/128), global average pooling",
    "resnet8": "CIFAR-style ResNet-8, widths 16/32/64",
    "resnet18_narrow": "ResNet-18 layout (4 stages x 2 blocks) at widths 16/32/64/128",
}


def build_classifier(name: str, in_channels: int, image_size: int, n_classes: int) -> Classifier:
    """A fresh classifier (weights from torch's global generator: call ``seed_torch`` first for reproducibility)."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown classifier {name!r}; known classifiers: {', '.join(sorted(_BUILDERS))}")
    for label, value in (("in_channels", in_channels), ("image_size", image_size), ("n_classes", n_classes)):
        if value < 1:
            raise ConfigError(f"classifier {name!r}: {label} must be >= 1, got {value}")
    return _BUILDERS[name](in_channels, image_size, n_classes)
