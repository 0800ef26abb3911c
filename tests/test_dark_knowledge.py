"""Dark-knowledge generator distillation: data-free by construction, loss terms, the conditional GAN, the run."""

import inspect

import pytest
import torch

import fedkd
import fedkd.data
import fedkd.data.datasets
from fedkd.errors import ConfigError
from fedkd.generative.artifacts import Provenance
from fedkd.generative.dark_knowledge import GeneratorDistillation, distill_generator
from fedkd.models.conditional_gan import ConditionalDiscriminator, ConditionalGenerator, GanConfig, load_gan, save_gan
from fedkd.seeding import seed_torch, torch_generator

TEACHER = GanConfig(widths=(16, 8, 8), disc_widths=(8, 8), z_dim=8)
STUDENT = GanConfig(widths=(8, 4, 4), disc_widths=(8, 8), z_dim=8)


@pytest.fixture
def teacher_pair():
    seed_torch(0, "tiny-gan")
    return ConditionalGenerator(TEACHER).eval(), ConditionalDiscriminator(TEACHER).eval()


def _gap(student, teacher):
    z = torch.randn(256, 8, generator=torch_generator(0, "probe"))
    y = torch.arange(256) % 10
    with torch.no_grad():
        return (student.eval()(z, y) - teacher(z, y)).abs().mean().item()


def test_generator_and_discriminator_shapes():
    seed_torch(0, "shapes")
    generator, discriminator = ConditionalGenerator(TEACHER), ConditionalDiscriminator(TEACHER)
    z, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 9])
    images, hidden = generator.forward_with_hidden(z, y)
    assert images.shape == (5, 1, 8, 8) and images.abs().max() <= 1.0
    assert hidden.shape == (5, 8, 8, 8)
    assert discriminator(images, y).shape == (5,)


def test_distillation_uses_no_real_images(monkeypatch, teacher_pair):
    """Every dataset loader raises: distillation still runs, because its only inputs are the teacher and noise."""

    def forbidden(*args, **kwargs):
        raise AssertionError("generator distillation touched a dataset")

    for module in (fedkd.data, fedkd.data.datasets):
        monkeypatch.setattr(module, "load_dataset", forbidden)
    monkeypatch.setattr(fedkd.data.datasets.ImageDataset, "tensors", forbidden)
    teacher, discriminator = teacher_pair
    seed_torch(0, "student")
    student = ConditionalGenerator(STUDENT)
    distill_generator(teacher, student, GeneratorDistillation(steps=3, batch_size=8), torch_generator(0, "d"),
                      discriminator)
    inputs = set(inspect.signature(distill_generator).parameters)
    assert inputs == {"teacher", "student", "settings", "generator", "discriminator", "on_log", "log_every",
                      "precision"}


@pytest.mark.parametrize("settings", [GeneratorDistillation(steps=150, batch_size=32),
                                      GeneratorDistillation(steps=150, batch_size=32).output_only()])
def test_the_student_moves_towards_the_teacher(teacher_pair, settings):
    teacher, discriminator = teacher_pair
    seed_torch(0, "student")
    student = ConditionalGenerator(STUDENT)
    before = _gap(student, teacher)
    logged = []
    distill_generator(teacher, student, settings, torch_generator(0, "d"), discriminator,
                      on_log=lambda step, loss: logged.append(loss), log_every=50)
    assert len(logged) == 3 and logged[-1] < logged[0]
    assert _gap(student, teacher) < 0.6 * before


def test_output_only_switches_off_both_extra_terms():
    settings = GeneratorDistillation(feature_weight=2.0, adversarial_weight=0.3).output_only()
    assert (settings.feature_weight, settings.adversarial_weight) == (0.0, 0.0)


def test_the_adversarial_term_needs_the_discriminator(teacher_pair):
    teacher, _ = teacher_pair
    with pytest.raises(ConfigError, match="discriminator"):
        distill_generator(teacher, ConditionalGenerator(STUDENT), GeneratorDistillation(steps=1),
                          torch_generator(0, "d"))


def test_gan_save_load_round_trip_and_mismatch(teacher_pair, tmp_path):
    teacher, discriminator = teacher_pair
    out = save_gan(teacher, discriminator, tmp_path / "gan", Provenance("fedkd gan train ...", "digits", 0))
    generator, disc = load_gan(out, expect={"dataset": "digits"})
    z, y = torch.randn(4, 8), torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(generator(z, y), teacher(z, y))
    torch.testing.assert_close(disc(teacher(z, y), y), discriminator(teacher(z, y), y))
    with pytest.raises(ConfigError, match="expects 'mnist5k'"):
        load_gan(out, expect={"dataset": "mnist5k"})


def test_the_shipped_teacher_loads_with_its_provenance():
    generator, _ = load_gan("pretrained/gan-digits", expect={"dataset": "digits", "image_size": 8})
    assert generator.config.n_classes == 10


def test_the_config_logs_the_three_fid_like_names(tmp_path):
    result = fedkd.run("simulations/dark_knowledge.toml", out=tmp_path / "run",
                       overrides={"distill.steps": 4, "eval.samples": 40, "eval.log_every": 2})
    logged = set(result.metrics["metric"])
    assert {"fid_like/teacher", "fid_like/dark_knowledge", "fid_like/output_only"} <= logged
    assert "train_loss/output_only" in logged and (tmp_path / "run" / "samples.png").is_file()


def test_the_28x28_config_logs_fid_like_and_class_accuracy_under_an_independent_classifier(tmp_path):
    # LeNet-5 as the feature net too: the shipped VGG-small costs 60x more per reference image than a test should
    result = fedkd.run("simulations/dark_knowledge28.toml", out=tmp_path / "run",
                       overrides={"distill.steps": 2, "eval.samples": 100, "eval.log_every": 1, "eval.grid": False,
                                  "eval.feature_net": "teachers/mnist5k-lenet5"})
    logged = set(result.metrics["metric"])
    assert {"fid_like/teacher", "fid_like/dark_knowledge", "fid_like/output_only"} <= logged
    assert result.final("class_acc/teacher") > 0.8  # the shipped teacher draws the digit it is asked for
    assert result.final("class_acc/output_only") < result.final("class_acc/teacher")  # 2 steps teach nothing
    assert result.final("fid_like/output_only") > result.final("fid_like/teacher")


def test_the_shipped_28x28_teacher_and_feature_net_load_for_mnist5k():
    from fedkd.teachers import load_teacher

    generator, _ = load_gan("pretrained/gan-mnist5k", expect={"dataset": "mnist5k", "image_size": 28})
    assert generator.config.widths == (128, 64, 32)
    assert load_teacher("pretrained/fid-mnist5k-vgg_small", dataset="mnist5k").info.image_size == 28
