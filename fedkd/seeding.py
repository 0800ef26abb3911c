"""One run seed derives every random stream.

Streams are keyed by names and numbers (``derive_seed(seed, "client", 3, "round", 2)``) instead of
being drawn one after another from a shared generator: a keyed stream does not change when another
part of the program draws more or fewer numbers, or when Ray runs clients in a different order.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed that depends only on ``seed`` and the ``keys`` path."""
    text = "/".join([str(int(seed)), *(str(k) for k in keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def numpy_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A NumPy generator for the stream named by ``keys``."""
    return np.random.default_rng(derive_seed(seed, *keys))


def torch_generator(seed: int, *keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator for the stream named by ``keys`` (device-local, so GPU runs need no CPU sync)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *keys))
    return gen


def seed_torch(seed: int, *keys: int | str) -> None:
    """Seed torch's global generator, for library code that draws from it (weight init, dropout)."""
    torch.manual_seed(derive_seed(seed, *keys))
