"""TandemGAN, DFME and the baselines in the shared loop: shapes, which parameters move, exact query cost, learning."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F

import fedkd.distill.loop
import fedkd.distill.store
import fedkd.distill.tandemgan
import fedkd.models.generators
from fedkd.distill.baselines import RandomNoise, RealData
from fedkd.distill.dfme import DFME, DFMEConfig
from fedkd.distill.experiment import evaluate_student
from fedkd.distill.loop import BlackBoxDistiller, DistillConfig
from fedkd.distill.losses import (
    disagreement,
    marginal_entropy,
    prediction_entropy,
    zeroth_order_disagreement_gradient,
    zeroth_order_probes,
)
from fedkd.distill.tandemgan import TandemGAN, TandemGANConfig
from fedkd.errors import ConfigError
from fedkd.generative.artifacts import resolve_path
from fedkd.models import build_classifier
from fedkd.models.generators import TandemGenerator
from fedkd.oracle import ModelOracle
from fedkd.seeding import seed_torch
from fedkd.teachers import load_teacher, teacher_splits
from fedkd.train import predict_logits


def tiny_net(n_classes: int = 10) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, n_classes))


@pytest.mark.parametrize("module", [fedkd.distill.loop, fedkd.distill.tandemgan, fedkd.models.generators])
def test_docstring_examples_run(module) -> None:
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("body", ["mlp", "deconv", "strokes"])
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_generators_make_images_in_range(body: str, channels: int, size: int) -> None:
    g = TandemGenerator(nz=16, channels=channels, image_size=size, body=body, width=16)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1


def test_stroke_body_draws_thin_light_strokes_on_a_dark_background_and_passes_gradients() -> None:
    seed_torch(0, "test-strokes")
    g = TandemGenerator(nz=16, channels=1, image_size=28, body="strokes", width=32)
    x = g(torch.randn(64, 16))
    ink = (x > 0).float().mean(dim=(1, 2, 3))
    assert (ink > 0).all() and ink.mean() < 0.3  # every image has strokes, and most of each is background
    assert (x[:, :, :2] < -0.9).all() and (x[:, :, :, -2:] < -0.9).all()  # the margins outside the box stay dark
    h = torch.randn(2, 1, 28, 28)
    assert torch.allclose(g.head(h), torch.tanh(h))  # the head starts as the identity: queries are the strokes
    x.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.body.parameters())


def test_unsupported_generator_shape_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no generator for 3x28x28"):
        TandemGenerator(nz=16, channels=3, image_size=28)
    with pytest.raises(ConfigError, match="unknown generator body 'vae'"):
        TandemGenerator(nz=16, channels=1, image_size=28, body="vae")  # type: ignore[arg-type]


def test_disagreement_losses() -> None:
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(disagreement(logits, labels, "label"), F.cross_entropy(logits, labels, reduction="none"))
    same = disagreement(logits, F.softmax(logits, 1), "proba")
    assert same.shape == (6,) and same.abs().max() < 1e-5  # a student that matches the teacher disagrees by zero
    assert (disagreement(logits, F.softmax(-logits, 1), "proba") > 0.1).all()
    confident = torch.tensor([[10.0, 0, 0, 0]] * 4)
    assert prediction_entropy(confident).max() < 0.01
    assert marginal_entropy(confident) < 0.01 and marginal_entropy(torch.eye(4) * 10) > 1.3


def test_zeroth_order_gradient_points_along_the_true_gradient() -> None:
    torch.manual_seed(0)
    teacher, student = tiny_net(5), tiny_net(5)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    oracle = ModelOracle(teacher, mode="proba")
    queries, u = zeroth_order_probes(x, directions=400, epsilon=1e-3, generator=torch.Generator().manual_seed(0))
    answers = oracle(queries)
    estimate = zeroth_order_disagreement_gradient(student, queries, answers, u, epsilon=1e-3)
    assert oracle.used == 4 * 401
    torch.testing.assert_close(answers[:4], F.softmax(teacher(x), 1))
    x_grad = x.clone().requires_grad_(True)
    exact = torch.autograd.grad(disagreement(student(x_grad), F.softmax(teacher(x_grad), 1), "proba").sum(), x_grad)[0]
    cosine = F.cosine_similarity(estimate.flatten(1), exact.flatten(1))
    assert (cosine > 0.3).all()  # 400 random directions in 784 dimensions: expected cosine ~ sqrt(400/784)


def parameters_moved(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in module.named_parameters() if not torch.equal(p, before[name])}


@pytest.mark.parametrize("mode", ["label", "proba"])
def test_tandemgan_step_explores_with_the_body_and_exploits_with_the_head(mode: str) -> None:
    tandem = TandemGAN(TandemGANConfig(width=32), channels=1, image_size=28, seed=0)
    oracle = ModelOracle(tiny_net(), mode=mode)
    head_before = {k: v.clone() for k, v in tandem.generator.head.named_parameters()}
    body_before = {k: v.clone() for k, v in tandem.generator.body.named_parameters()}
    student = tiny_net()
    proposal = tandem.propose(student, batch_size=16, mode=mode)
    x, answers = tandem.learn(student, proposal, oracle(proposal.queries), replay=None)
    assert oracle.used == tandem.queries_per_step(16, mode) == (16 if mode == "label" else 32)
    assert parameters_moved(tandem.generator.body, body_before)
    assert parameters_moved(tandem.generator.head, head_before)
    assert all(p.grad is None for p in student.parameters())  # the generator steps never train the student
    assert x.shape == (16, 1, 28, 28) and len(answers) == 16

    exploit_only = TandemGAN(TandemGANConfig(width=32), channels=1, image_size=28, seed=0)
    body_before = {k: v.clone() for k, v in exploit_only.generator.body.named_parameters()}
    exploit_only.exploitation_step(student, batch_size=16)
    assert not parameters_moved(exploit_only.generator.body, body_before)


@pytest.mark.parametrize("mode", ["label", "proba"])
@pytest.mark.parametrize("method", ["tandemgan", "dfme", "random", "real"])
def test_every_method_spends_exactly_its_iteration_cost(method: str, mode: str) -> None:
    sources = {
        "tandemgan": lambda: TandemGAN(TandemGANConfig(width=16), 1, 28, seed=1),
        "dfme": lambda: DFME(DFMEConfig(width=16), 1, 28, seed=1),
        "random": lambda: RandomNoise(1, 28, seed=1),
        "real": lambda: RealData(torch.rand(50, 1, 28, 28) * 2 - 1, seed=1),
    }
    oracle = ModelOracle(tiny_net(), mode=mode, budget=1000)
    distiller = BlackBoxDistiller(tiny_net(), oracle, sources[method](), DistillConfig(batch_size=32, student_steps=2))
    distiller.run()
    cost = distiller.iteration_cost
    assert oracle.used == distiller.iterations * cost and 1000 - cost < oracle.used <= 1000
    paid_batches = 0 if method in ("random", "real") else 1
    assert distiller.student_updates == distiller.iterations * (2 + paid_batches)
    assert set(distiller.seconds) == {"teacher", "generator", "student", "store"}


def test_distiller_state_round_trip_continues_identically() -> None:
    def fresh() -> tuple[BlackBoxDistiller, ModelOracle]:
        seed_torch(0, "student")
        oracle = ModelOracle(tiny_net(), mode="label", budget=10_000)
        source = TandemGAN(TandemGANConfig(width=16), 1, 28, seed=3)
        return BlackBoxDistiller(tiny_net(), oracle, source, DistillConfig(batch_size=16, student_steps=2)), oracle

    straight, _ = fresh()
    for _ in range(4):
        straight.step()
    first, _ = fresh()
    first.step(), first.step()
    tensors, state = first.state()
    resumed, oracle = fresh()
    oracle.used = state["queries"]
    resumed.load_state(tensors, state)
    resumed.step(), resumed.step()
    for a, b in zip(straight.student.parameters(), resumed.student.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _tandem_run(wave_size: int, mode: str) -> tuple[BlackBoxDistiller, list[int]]:
    calls: list[int] = []
    seed_torch(0, "teacher")
    teacher = tiny_net()

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return teacher(x)

    seed_torch(0, "student")
    oracle = ModelOracle(counted, mode=mode, budget=1000, batch_size=10**9)
    source = TandemGAN(TandemGANConfig(width=16), 1, 28, seed=3)
    distiller = BlackBoxDistiller(tiny_net(), oracle, source, DistillConfig(batch_size=16, student_steps=2),
                                  wave_size=wave_size)
    distiller.run()
    return distiller, calls


@pytest.mark.parametrize("mode", ["label", "proba"])
def test_a_wave_of_one_batch_is_the_per_batch_protocol_and_larger_waves_ask_less_often(mode: str) -> None:
    per_batch, calls = _tandem_run(0, mode)
    one_batch, one_batch_calls = _tandem_run(16, mode)
    assert one_batch_calls == calls and len(calls) == 3 * per_batch.iterations
    for a, b in zip(per_batch.student.parameters(), one_batch.student.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    cost = per_batch.iteration_cost
    waves, wave_calls = _tandem_run(4 * cost, mode)
    assert sum(wave_calls) == per_batch.oracle.used == waves.oracle.used
    assert wave_calls[0] == 4 * cost and len(wave_calls) == -(-per_batch.iterations // 4)


def test_short_tandemgan_run_beats_random_noise_on_the_digits_teacher() -> None:
    teacher = load_teacher(resolve_path("teachers/digits28-lenet5"))
    _, test = teacher_splits(teacher.info)
    x_test, y_test = test.tensors()
    teacher_labels = predict_logits(teacher.model, x_test).argmax(1)
    budget = 30_000
    scores = {}
    sources = {"tandemgan": TandemGAN(TandemGANConfig(), 1, 28, seed=0), "random": RandomNoise(1, 28, seed=0)}
    for name, source in sources.items():
        seed_torch(0, "student")
        student = build_classifier("lenet5", 1, 28, 10)
        oracle = ModelOracle(teacher.model, mode="label", budget=budget)
        BlackBoxDistiller(student, oracle, source, DistillConfig(budget=budget)).run()
        assert budget - 1536 < oracle.used <= budget
        scores[name] = evaluate_student(student, x_test, y_test, teacher_labels)["test_acc"]
    assert scores["random"] < 0.3  # measured: 0.20; TandemGAN 0.45 at the same 30k queries
    assert scores["tandemgan"] > scores["random"] + 0.15, scores


@pytest.mark.parametrize("source", ["tandemgan", "dfme"])
def test_a_generator_method_with_offline_epochs_trains_on_every_answer_it_paid_for_once_the_budget_is_spent(
        source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stages: list[tuple[int, int]] = []  # (stored answers, steps) of each store stage

    def counted(student, store, training, *args, **kwargs):
        steps = fedkd.distill.store.train_on_store(student, store, training, *args, **kwargs)
        stages.append((len(store), steps))
        return steps

    monkeypatch.setattr(fedkd.distill.loop, "train_on_store", counted)

    def run(offline_epochs: int) -> BlackBoxDistiller:
        seed_torch(0, "student")
        oracle = ModelOracle(tiny_net(), mode="label", budget=1000)
        settings = {"width": 16, "offline_epochs": offline_epochs, "offline_batch_size": 50}
        synthesizer = (TandemGAN(TandemGANConfig(**settings), 1, 28, seed=3) if source == "tandemgan"
                       else DFME(DFMEConfig(**settings), 1, 28, seed=3))
        distiller = BlackBoxDistiller(tiny_net(), oracle, synthesizer, DistillConfig(batch_size=32, student_steps=2))
        distiller.run()
        return distiller

    online = run(0)
    assert online.store is None and stages == []  # off by default: no memory spent on answers never used again
    offline = run(2)
    assert len(offline.store) == offline.oracle.used  # every answer it paid for, exploration batches included
    assert stages == [(offline.oracle.used, 2 * -(-offline.oracle.used // 50))]  # once, two passes
    assert not all(torch.equal(a, b) for a, b in zip(online.student.parameters(), offline.student.parameters(),
                                                      strict=True))


def test_a_bad_store_stage_setting_of_a_generator_method_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^tandemgan\.offline_epochs must be >= 0, got -1$"):
        TandemGANConfig(offline_epochs=-1).validate()
    with pytest.raises(ConfigError, match=r"^dfme\.offline_lr must be > 0, got 0.0$"):
        DFMEConfig(offline_lr=0.0).validate()
