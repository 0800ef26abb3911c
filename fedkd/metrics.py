"""Measures shared across methods: accuracy, fidelity, and an FID-like distance with the project's own feature net.

**FID-like, not comparable to published FID.** The Fréchet distance of Heusel et al. (2017) between
Gaussians fitted to two sets of features,

    d^2 = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2}),

is computed here in the penultimate layer of a classifier this project trains itself on the same offline
data (``fedkd teacher train``; no Inception weights are downloaded), so values depend on that net, on the
image size and on the number of samples: compare only numbers measured with the same feature net and the
same sample count. Precision and recall (Kynkäänniemi et al., 2019) say *why* a distance is large: the
share of generated samples that land inside the real data's k-nearest-neighbour balls (quality), and the
share of real samples inside the generated samples' balls (coverage).

>>> fid = FidLike.from_teacher("pretrained/fid-digits-vgg_small")     # doctest: +SKIP
>>> fid(generated_images)                                             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedkd.errors import DataError


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of predicted class indices (or logits/probabilities, arg-maxed) equal to the labels ``y``."""
    return _agreement(pred, y, "accuracy")


def fidelity(student_pred: torch.Tensor, teacher_pred: torch.Tensor) -> float:
    """Agreement rate: fraction of inputs where the student's class equals the teacher's (indices or scores)."""
    return _agreement(student_pred, teacher_pred, "fidelity")


def _agreement(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    a, b = _as_classes(a), _as_classes(b)
    if a.shape != b.shape or a.numel() == 0:
        raise DataError(f"{what} needs two equally long, non-empty predictions, got shapes "
                        f"{tuple(a.shape)} and {tuple(b.shape)}")
    return float((a == b.to(a.device)).float().mean())


def _as_classes(pred: torch.Tensor) -> torch.Tensor:
    return pred.argmax(1) if pred.dim() == 2 else pred


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """The Fréchet distance between N(mu1, cov1) and N(mu2, cov2) (the formula in the module docstring).

    The trace of the matrix square root is the sum of the square roots of the eigenvalues of the
    symmetric positive semi-definite S_1^{1/2} S_2 S_1^{1/2}, computed in float64 with ``eigh``, which is
    stabler than a general ``sqrtm`` and needs no SciPy.
    """
    vals, vecs = np.linalg.eigh(cov1)
    root1 = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    middle = root1 @ cov2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_root, 0.0))


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of a set of features, plus the features themselves for precision/recall."""

    mean: np.ndarray
    cov: np.ndarray
    features: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        if len(features) < 2:
            raise DataError(f"an FID-like distance needs at least 2 images per set, got {len(features)}")
        feats = features.astype(np.float64)
        return cls(feats.mean(0), np.cov(feats, rowvar=False), feats)


class FidLike:
    """FID-like distance of image sets to a reference set, in the feature space of ``feature_net``.

    ``feature_net`` is a fedkd classifier (``.features(x)`` is its penultimate embedding); ``reference``
    holds real images (N, C, H, W) in [-1, 1], whose statistics are computed once. Images are measured on the
    net's device; the statistics are NumPy arrays on the CPU.
    """

    def __init__(self, feature_net: nn.Module, reference: torch.Tensor, batch_size: int = 512) -> None:
        self.net = feature_net.eval()
        self.batch_size = batch_size
        self.image_shape = tuple(reference.shape[1:])
        self.reference = self.stats(reference)

    @classmethod
    def from_teacher(cls, path: str | Path = "pretrained/fid-digits-vgg_small", dataset: str | None = None,
                     device: str | torch.device = "cpu") -> FidLike:
        """The feature net saved by ``fedkd teacher train`` at ``path``, on ``device``; the reference is its training
        split."""
        from fedkd.generative.artifacts import resolve_path
        from fedkd.teachers import load_teacher, teacher_splits

        teacher = load_teacher(resolve_path(path), dataset=dataset)
        train, _ = teacher_splits(teacher.info)
        return cls(teacher.model.to(device), torch.from_numpy(np.array(train.x)))

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Penultimate-layer features of ``images`` (no gradients), as a float64 array (N, feature_dim)."""
        if tuple(images.shape[1:]) != self.image_shape:
            raise DataError(f"images are shaped {tuple(images.shape[1:])}, but the feature net's reference set is "
                            f"{self.image_shape}; resize them first")
        device = next(self.net.parameters()).device
        with torch.no_grad():
            chunks = [self.net.features(images[i:i + self.batch_size].to(device).float())
                      for i in range(0, len(images), self.batch_size)]
        return torch.cat(chunks).double().cpu().numpy()

    def stats(self, images: torch.Tensor) -> FeatureStats:
        return FeatureStats.of(self.features(images))

    def __call__(self, images: torch.Tensor, reference: torch.Tensor | None = None) -> float:
        """Fréchet distance of ``images`` to the reference set (or to ``reference`` when given)."""
        ref = self.reference if reference is None else self.stats(reference)
        gen = self.stats(images)
        return frechet_distance(gen.mean, gen.cov, ref.mean, ref.cov)

    def precision_recall(self, images: torch.Tensor, k: int = 3) -> tuple[float, float]:
        """(precision, recall) of ``images`` against the reference set with k-nearest-neighbour balls."""
        gen, real = self.features(images), self.reference.features
        return _coverage(gen, real, k), _coverage(real, gen, k)


def _coverage(points: np.ndarray, support: np.ndarray, k: int) -> float:
    """Share of ``points`` within the k-NN radius of at least one ``support`` point (radius: its k-th neighbour)."""
    if len(support) <= k:
        raise DataError(f"precision/recall with k={k} needs more than {k} images per set, got {len(support)}")
    support_t = torch.from_numpy(support)
    radii = torch.cdist(support_t, support_t).kthvalue(k + 1, dim=1).values  # k+1: each point is its own nearest
    inside = torch.cdist(torch.from_numpy(points), support_t) <= radii[None, :]
    return float(inside.any(1).double().mean())
