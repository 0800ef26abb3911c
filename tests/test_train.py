"""Training loop: learns real digits, is bit-reproducible from its generator, and leaves models as it found them."""

import pytest
import torch

from fedkd.data import load_dataset
from fedkd.errors import ConfigError, DataError
from fedkd.models import build_classifier
from fedkd.seeding import seed_torch, torch_generator
from fedkd.train import EarlyStopping, evaluate_accuracy, predict_logits, random_shift, train_classifier


@pytest.fixture(scope="module")
def digits():
    train, test = load_dataset("digits").split(test_fraction=0.25, seed=0)
    return train.tensors(), test.tensors()


def _fresh(name="mlp"):
    seed_torch(0, "model")
    return build_classifier(name, 1, 8, 10)


@pytest.mark.parametrize("name, epochs, floor", [("mlp", 10, 0.9), ("lenet5", 10, 0.85)])
def test_classifiers_learn_real_digits(digits, name, epochs, floor):
    (x, y), (xt, yt) = digits
    model = _fresh(name)
    before = evaluate_accuracy(model, xt, yt)
    result = train_classifier(model, x, y, epochs=epochs, batch_size=64, lr=3e-3, generator=torch_generator(0, "train"))
    loss = result.loss
    after = evaluate_accuracy(model, xt, yt)
    assert before < 0.3 and after > floor and loss < 0.5


def test_same_generator_seed_gives_bit_identical_weights(digits):
    (x, y), _ = digits
    runs = []
    for seed in (5, 5, 6):
        model = _fresh()
        loss = train_classifier(model, x, y, epochs=1, batch_size=32, lr=1e-3, generator=torch_generator(seed, "t"),
                                augment=True).loss
        runs.append((loss, torch.cat([p.flatten() for p in model.parameters()])))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][1], runs[2][1])


def test_sgd_with_weight_decay_also_trains(digits):
    (x, y), (xt, yt) = digits
    model = _fresh()
    train_classifier(model, x, y, epochs=5, batch_size=32, lr=0.05, generator=torch_generator(0, "t"), optimizer="sgd",
                     weight_decay=1e-4)
    assert evaluate_accuracy(model, xt, yt) > 0.85


def test_early_stopping_keeps_the_best_epoch_and_stops_when_held_out_accuracy_stalls(digits):
    (x, y), (xt, yt) = digits
    model = _fresh()
    held_out = EarlyStopping(xt, yt, patience=2)
    result = train_classifier(model, x, y, epochs=40, batch_size=64, lr=3e-3, generator=torch_generator(0, "t"),
                              early_stopping=held_out)
    assert result.epochs < 40  # digits converge in a handful of epochs; two stale epochs end it
    assert result.val_acc == evaluate_accuracy(model, xt, yt) > 0.9  # the weights are those of the best epoch
    # Labels with no relation to the images: held-out accuracy never improves on the first epochs' for long.
    noise = torch.randint(0, 10, (len(yt),), generator=torch_generator(1, "noise"))
    stalled = train_classifier(_fresh(), x, y, epochs=40, batch_size=64, lr=3e-3, generator=torch_generator(0, "t"),
                               early_stopping=EarlyStopping(xt, noise, patience=1))
    assert stalled.epochs < 10


def test_predict_logits_restores_mode_and_tracks_no_gradient(digits):
    _, (xt, _) = digits
    model = _fresh("lenet5")
    model.train()
    logits = predict_logits(model, xt, batch_size=100)
    assert logits.shape == (len(xt), 10) and not logits.requires_grad and model.training
    model.eval()
    predict_logits(model, xt)
    assert not model.training


def test_random_shift_moves_images_within_bounds():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(50, 1, 1, 1)
    shifted = random_shift(x, 1, torch_generator(0, "aug"))
    assert shifted.shape == x.shape
    assert shifted.min() >= 0 and shifted.max() <= 15
    assert len({tuple(s.flatten().tolist()) for s in shifted}) > 3  # several different offsets drawn
    # A shift by (+1 row, 0 cols) is one of the nine possible outcomes: row r shows row r+1, the last row repeats.
    down = torch.cat([x[0, 0, 1:], x[0, 0, 3:]]).flatten().tolist()
    assert any(s.flatten().tolist() == down for s in shifted)
    assert torch.equal(random_shift(x, 0, torch_generator(0, "aug")), x)


def test_bad_training_arguments_are_rejected(digits):
    (x, y), _ = digits
    model = _fresh()
    gen = torch_generator(0, "t")
    with pytest.raises(ConfigError, match="rmsprop"):
        train_classifier(model, x, y, epochs=1, batch_size=8, lr=0.1, generator=gen, optimizer="rmsprop")
    with pytest.raises(ConfigError, match="epochs"):
        train_classifier(model, x, y, epochs=0, batch_size=8, lr=0.1, generator=gen)
    with pytest.raises(DataError, match="labels"):
        train_classifier(model, x, y[:-1], epochs=1, batch_size=8, lr=0.1, generator=gen)
    with pytest.raises(DataError, match="empty"):
        evaluate_accuracy(model, x[:0], y[:0])
