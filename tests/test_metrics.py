"""Metrics: accuracy/fidelity helpers, the Fréchet distance formula, and the FID-like metric on real digits."""

import numpy as np
import pytest
import torch

from fedkd.data import load_dataset
from fedkd.errors import DataError
from fedkd.metrics import FidLike, accuracy, fidelity, frechet_distance
from fedkd.seeding import torch_generator


@pytest.fixture(scope="module")
def fid():
    return FidLike.from_teacher("pretrained/fid-digits-vgg_small", dataset="digits")


@pytest.fixture(scope="module")
def held_out():
    _, test = load_dataset("digits").split(0.2, 0)
    return torch.from_numpy(np.array(test.x))


def test_accuracy_and_fidelity_accept_indices_or_scores():
    y = torch.tensor([0, 1, 2, 2])
    logits = torch.tensor([[3.0, 0, 0], [0, 2.0, 0], [1.0, 0, 0], [0, 0, 5.0]])
    assert accuracy(logits, y) == 0.75
    assert accuracy(y, y) == 1.0
    assert fidelity(logits, torch.tensor([0, 1, 0, 1])) == 0.75
    with pytest.raises(DataError, match="equally long"):
        fidelity(y, y[:3])


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, 1.0])
    var1, var2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    expected = 4.0 + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0.0, abs=1e-9)


def test_fid_like_is_zero_for_identical_sets_and_grows_with_added_noise(fid, held_out):
    assert fid(held_out, reference=held_out) == pytest.approx(0.0, abs=1e-6)
    gen = torch_generator(0, "test-noise")
    noise = torch.randn(held_out.shape, generator=gen)
    distances = [fid((held_out + sigma * noise).clamp(-1, 1), reference=held_out) for sigma in (0.1, 0.3, 0.6, 1.0)]
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False))
    assert distances[0] > 0.0


def test_held_out_real_digits_are_close_to_the_reference_and_noise_is_far(fid, held_out):
    real = fid(held_out)
    noise = fid(torch.rand(held_out.shape, generator=torch_generator(0, "uniform")) * 2 - 1)
    assert real < 0.1 * noise


def test_precision_and_recall_separate_real_images_from_noise(fid, held_out):
    precision, recall = fid.precision_recall(held_out)
    assert precision > 0.6 and recall > 0.5
    noise = torch.rand(held_out.shape, generator=torch_generator(1, "uniform")) * 2 - 1
    assert fid.precision_recall(noise)[0] < 0.2


def test_images_of_another_size_are_refused(fid):
    with pytest.raises(DataError, match="resize"):
        fid(torch.zeros(4, 1, 28, 28))
