"""Readers for image sets a user already has on disk: MNIST-style IDX files, CIFAR-10 python batches, ``.npz``.

Each reader only understands a file format and returns raw arrays ``(images, labels)`` with images
shaped (N, C, H, W) in their stored dtype; scaling to the project's [-1, 1] convention happens in
``fedkd.data.datasets``, so the formats and the conventions can change independently. Nothing here
downloads: a missing path raises ``DataError`` naming the path and the files that were expected.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from fedkd.errors import DataError

IDX_PAIRS = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
NPZ_IMAGE_KEYS = ("x", "images")
NPZ_LABEL_KEYS = ("y", "labels")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _require_directory(path: str | Path | None, what: str, expected: str) -> Path:
    if path is None:
        raise DataError(f"{what} needs a path to a directory holding {expected}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{what}: directory {str(folder)!r} does not exist; expected it to hold {expected}")
    return folder


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (the MNIST / Fashion-MNIST format), plain or ``.gz``.

    Layout: two zero bytes, a type code, the number of dimensions d, d big-endian uint32 sizes, then
    the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{str(path)!r} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise DataError(f"{str(path)!r}: IDX header says shape {shape} "
                        f"but the file holds {len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_folder(path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """All IDX image/label pairs in a folder (train and t10k, whichever are present), concatenated.

    Works for MNIST and Fashion-MNIST, which share file names. Images come back as uint8 (N, 1, 28, 28).
    """
    expected = " and ".join(f"{img}[.gz] + {lab}[.gz]" for img, lab in IDX_PAIRS) + " (at least one pair)"
    folder = _require_directory(path, "mnist-idx", expected)
    images, labels = [], []
    for image_stem, label_stem in IDX_PAIRS:
        image_file, label_file = _find_idx(folder, image_stem), _find_idx(folder, label_stem)
        if image_file is None or label_file is None:
            continue
        x, y = read_idx(image_file), read_idx(label_file)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{str(image_file)!r} / {str(label_file)!r}: expected images (N, H, W) and labels (N,), "
                            f"got {x.shape} and {y.shape}")
        images.append(x[:, None])
        labels.append(y)
    if not images:
        raise DataError(f"mnist-idx: no IDX image/label pair in {str(folder)!r}; expected {expected}")
    return np.concatenate(images), np.concatenate(labels)


def read_cifar10_folder(path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The CIFAR-10 python batches in a folder (``cifar-10-batches-py``), whichever are present, concatenated.

    Each batch is a pickle with ``data`` (N, 3072) uint8 in channel-major order and ``labels``.
    Images come back as uint8 (N, 3, 32, 32).
    """
    expected = ", ".join(CIFAR10_BATCHES) + " (at least one)"
    folder = _require_directory(path, "cifar10-batches", expected)
    images, labels = [], []
    for name in CIFAR10_BATCHES:
        batch_file = folder / name
        if not batch_file.is_file():
            continue
        with open(batch_file, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data, batch_labels = batch.get(b"data"), batch.get(b"labels")
        if data is None or batch_labels is None:
            raise DataError(f"{str(batch_file)!r} is not a CIFAR-10 python batch (no 'data'/'labels' entries)")
        images.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch_labels))
    if not images:
        raise DataError(f"cifar10-batches: no batch file in {str(folder)!r}; expected {expected}")
    return np.concatenate(images), np.concatenate(labels)


def _channels_first(x: np.ndarray, source: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in {1, 3, 4} -> (N, C, H, W); (N, C, H, W) kept."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3, 4):
        return x
    if x.ndim == 4 and x.shape[3] in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise DataError(f"{source}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1/3/4, got {x.shape}")


def read_npz(path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from a ``.npz`` with arrays ``x``/``images`` and ``y``/``labels``.

    Images may be channels-last or channels-first; they come back channels-first in their stored dtype.
    """
    expected = f"a .npz file with arrays {' or '.join(NPZ_IMAGE_KEYS)} and {' or '.join(NPZ_LABEL_KEYS)}"
    if path is None:
        raise DataError(f"npz needs a path to {expected}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"npz: file {str(file)!r} does not exist; expected {expected}")
    with np.load(file, allow_pickle=False) as archive:
        image_key = next((k for k in NPZ_IMAGE_KEYS if k in archive.files), None)
        label_key = next((k for k in NPZ_LABEL_KEYS if k in archive.files), None)
        if image_key is None or label_key is None:
            raise DataError(f"npz: {str(file)!r} holds arrays {archive.files}; expected {expected}")
        x, y = archive[image_key], archive[label_key]
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"npz: {str(file)!r}: labels must be shaped ({len(x)},), got {y.shape}")
    return _channels_first(x, f"npz {str(file)!r}"), y
