"""Classifiers: output and embedding shapes on every supported image size, seeded construction, registry errors."""

import pytest
import torch

from fedkd.errors import ConfigError
from fedkd.models import CLASSIFIERS, build_classifier
from fedkd.models.classifiers import MaxPool2x2
from fedkd.seeding import seed_torch

SIZES = [(1, 8), (1, 28), (3, 32)]


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("channels, size", SIZES)
def test_logits_and_features_have_the_promised_shapes(name, channels, size):
    model = build_classifier(name, channels, size, n_classes=7)
    x = torch.rand(3, channels, size, size) * 2 - 1
    logits, feats = model(x), model.features(x)
    assert logits.shape == (3, 7)
    assert feats.shape == (3, model.feature_dim) and isinstance(model.feature_dim, int)
    assert torch.allclose(model.head(feats), logits)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_registry_names_match_the_design():
    assert set(CLASSIFIERS) == {"mlp", "lenet5", "vgg_small", "resnet8", "resnet18_narrow"}


def test_same_seed_builds_the_same_weights():
    seed_torch(0, "model")
    first = build_classifier("lenet5", 1, 28, 10)
    seed_torch(0, "model")
    second = build_classifier("lenet5", 1, 28, 10)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=False):
        assert torch.equal(a, b)


def test_lenet5_keeps_the_classic_400_inputs_on_28x28():
    model = build_classifier("lenet5", 1, 28, 10)
    first_dense = next(m for m in model.body.modules() if isinstance(m, torch.nn.Linear))
    assert first_dense.in_features == 16 * 5 * 5


def test_unknown_classifier_lists_the_known_ones():
    with pytest.raises(ConfigError, match="resnet8"):
        build_classifier("alexnet", 1, 28, 10)


def test_nonpositive_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="n_classes"):
        build_classifier("mlp", 1, 28, 0)


@pytest.mark.parametrize("shape", [(4, 6, 28, 28), (3, 16, 10, 10), (2, 3, 7, 9), (5, 2, 3, 4)])
def test_fast_max_pool_gives_max_pool2d_values_and_gradients(shape):
    x = torch.randn(*shape).relu()
    with torch.no_grad():
        assert torch.equal(MaxPool2x2()(x), torch.nn.functional.max_pool2d(x, 2))
    fast, reference = x.clone().requires_grad_(), x.clone().requires_grad_()
    MaxPool2x2()(fast).square().sum().backward()
    torch.nn.functional.max_pool2d(reference, 2).square().sum().backward()
    assert torch.equal(fast.grad, reference.grad)
