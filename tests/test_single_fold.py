"""Single-fold and progressive diffusion distillation: schedules, targets, training, and the shipped config."""

import pytest
import torch

import fedkd
from fedkd.errors import ConfigError
from fedkd.generative.progressive import progressive_distill, two_step_target
from fedkd.generative.single_fold import DiffusionDistillation, fold_student, single_fold_distill
from fedkd.models.diffusion import DiffusionConfig, DiffusionModel, NoiseSchedule
from fedkd.seeding import seed_torch, torch_generator

TINY = DiffusionConfig(widths=(8, 8), norm_groups=4, num_train_steps=16)


@pytest.fixture(scope="module")
def teacher():
    seed_torch(0, "tiny-teacher")
    return DiffusionModel(TINY).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def images():
    return torch.rand(64, 1, 8, 8, generator=torch_generator(0, "images")) * 2 - 1


@pytest.mark.parametrize("c", [1, 2, 8, 64])
def test_the_student_schedule_equals_the_teachers_at_the_mapped_steps(c):
    teacher = NoiseSchedule.cosine(64)
    student = teacher.fold(c)
    assert len(student) == 64 // c
    for t in range(1, len(student) + 1):  # 1-based, as in alpha_bar'_t = alpha_bar_{c t}
        assert student.alpha_bar[t - 1] == teacher.alpha_bar[c * t - 1]
        assert student.timesteps[t - 1] == c * t - 1


def test_any_increasing_subsequence_is_a_student_schedule(teacher):
    student = fold_student(teacher, [0, 5, 6, 15], widths=(8, 4))
    assert student.schedule.timesteps.tolist() == [0, 5, 6, 15]
    assert torch.equal(student.schedule.alpha_bar, teacher.schedule.alpha_bar[[0, 5, 6, 15]])
    assert student.config.widths == (8, 4)
    with pytest.raises(ConfigError, match="strictly increasing"):
        fold_student(teacher, [3, 2])
    with pytest.raises(ConfigError, match="divide"):
        teacher.schedule.fold(3)


def test_single_fold_training_decreases_its_loss(teacher, images):
    seed_torch(0, "student")
    student = fold_student(teacher, 4, widths=(8, 4))
    logged = []
    single_fold_distill(teacher, student, images, DiffusionDistillation(steps=120, batch_size=32),
                        torch_generator(0, "sf"), on_log=lambda step, loss: logged.append(loss), log_every=30)
    assert len(logged) == 4 and logged[-1] < 0.8 * logged[0]


def test_one_student_step_with_the_progressive_target_lands_where_two_teacher_steps_do(teacher):
    z_t = torch.randn(6, 1, 8, 8, generator=torch_generator(0, "z_t"))
    pos = torch.tensor([1, 3, 5, 9, 13, 15])  # odd: the teacher steps a halved student keeps
    eps = two_step_target(teacher, z_t, pos)
    with torch.no_grad():
        two_steps = teacher.ddim_update(teacher.ddim_update(z_t, pos, pos - 1), pos - 1, pos - 2)
    a = teacher.schedule.alpha_bar
    a_t = a[pos].view(-1, 1, 1, 1)
    a_end = torch.where(pos >= 2, a[(pos - 2).clamp(min=0)], torch.ones(())).view(-1, 1, 1, 1)
    one_step = a_end.sqrt() * (z_t - (1 - a_t).sqrt() * eps) / a_t.sqrt() + (1 - a_end).sqrt() * eps
    torch.testing.assert_close(one_step, two_steps, rtol=1e-3, atol=1e-4)


def test_progressive_distillation_halves_the_steps_and_starts_each_round_from_the_last(teacher, images):
    starts = []
    students = progressive_distill(teacher, images, DiffusionDistillation(steps=2, batch_size=8), 2,
                                   torch_generator(0, "pd"), {"widths": (8, 4)},
                                   on_round=lambda r, s: starts.append(s.schedule.timesteps.tolist()))
    assert [s.num_steps for s in students] == [8, 4]
    assert starts == [[1, 3, 5, 7, 9, 11, 13, 15], [3, 7, 11, 15]]
    assert all(s.config.widths == (8, 4) for s in students)
    with pytest.raises(ConfigError, match="divisible"):
        progressive_distill(teacher, images, DiffusionDistillation(steps=1), 5, torch_generator(0, "pd"))


def test_the_config_rejects_step_counts_that_do_not_divide_the_teacher(tmp_path):
    with pytest.raises(ConfigError, match="12 must divide the teacher's 64 steps"):
        fedkd.run("simulations/single_fold.toml", overrides={"student.steps": [12]}, out=tmp_path / "run")


def test_the_config_logs_teacher_single_fold_and_progressive_names(tmp_path):
    result = fedkd.run("simulations/single_fold.toml", out=tmp_path / "run",
                       overrides={"student.steps": [8], "distill.steps_per_halving": 2, "eval.samples": 20,
                                  "eval.teacher_steps": [8], "eval.log_every": 2})
    logged = set(result.metrics["metric"])
    assert {"fid_like/teacher@8", "fid_like/single_fold@8", "fid_like/progressive@8"} <= logged
    assert {"fid_like/teacher_ddpm@64", "fid_like/single_fold_ddpm@8", "fid_like/progressive@32"} <= logged
    assert result.final("train_steps/single_fold@8") == result.final("train_steps/progressive@8") == 6
    assert (tmp_path / "run" / "samples.png").is_file()
