"""AEDM's class-balanced offline phase: a teacher that answers few queries with some class must not drown it."""

import pytest
import torch

from fedkd.distill.aedm import AEDM, AEDMConfig
from fedkd.models.diffusion import DiffusionConfig, DiffusionModel


def test_class_weights_give_every_answered_class_the_same_total_weight():
    answers = torch.tensor([0, 0, 0, 0, 2, 3, 3])
    weights = AEDM.class_weights(answers)
    totals = [float(weights[answers == c].sum()) for c in (0, 2, 3)]
    assert totals == [totals[0]] * 3
    assert float(weights.mean()) == pytest.approx(1.0)
    probabilities = torch.nn.functional.one_hot(answers, 5).float() * 0.8 + 0.04
    assert torch.equal(AEDM.class_weights(probabilities), weights)


def _recall_of_rare_class(balance: bool) -> float:
    torch.manual_seed(0)
    prior = DiffusionModel(DiffusionConfig(image_size=8, widths=(8, 16), num_train_steps=16))
    cfg = AEDMConfig(offline_epochs=3, offline_batch_size=64, balance_classes=balance, augment_shift=0.0,
                     augment_degrees=0.0, augment_scale=0.0)
    aedm = AEDM(cfg, prior, 8, seed=0)
    generator = torch.Generator().manual_seed(1)
    labels = (torch.rand(2000, generator=generator) < 0.05).long()  # 5 % of the answers are class 1
    images = (labels.view(-1, 1, 1, 1).float() * 0.15 - 0.075) + torch.randn(2000, 1, 8, 8, generator=generator)
    aedm.memory_x, aedm.memory_answers = [images.clamp(-1, 1)], [labels]
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    aedm.train_offline(student, "label")
    with torch.no_grad():
        predicted = student(images.clamp(-1, 1)).argmax(dim=1)
    return float((predicted[labels == 1] == 1).float().mean())


def test_balanced_offline_training_recovers_a_rare_class():
    assert _recall_of_rare_class(balance=True) > _recall_of_rare_class(balance=False) + 0.15  # measured 0.64 vs 0.43
