"""The diffusion model: sampler math, gradients to the starting noise, and the checked save/load of priors."""

import json

import pytest
import torch

from fedkd.errors import ConfigError
from fedkd.generative.artifacts import Provenance
from fedkd.models.diffusion import DiffusionConfig, DiffusionModel, NoiseSchedule, load_prior, save_prior
from fedkd.seeding import seed_torch, torch_generator

TINY = DiffusionConfig(widths=(8, 8), norm_groups=4, num_train_steps=16)


@pytest.fixture(scope="module")
def tiny():
    seed_torch(0, "tiny-diffusion")
    return DiffusionModel(TINY).eval()


def test_cosine_schedule_decreases_from_almost_clean_to_almost_pure_noise():
    alpha_bar = NoiseSchedule.cosine(64).alpha_bar
    assert alpha_bar[0] > 0.99 and alpha_bar[-1] < 1e-3
    assert (alpha_bar[1:] < alpha_bar[:-1]).all()


def test_ddpm_update_is_the_posterior_of_ho_et_al(tiny):
    """eta = 1 samples q(x_{t-1} | x_t, x0_hat): mean and variance of Eq. 7 of the DDPM paper."""
    x = torch.randn(3, 1, 8, 8, generator=torch_generator(0, "x"))
    noise = torch.randn(3, 1, 8, 8, generator=torch_generator(0, "z"))
    t = 9
    pos, prev = torch.full((3,), t), torch.full((3,), t - 1)
    a_t, a_prev = tiny.schedule.alpha_bar[t], tiny.schedule.alpha_bar[t - 1]
    beta = 1 - a_t / a_prev
    with torch.no_grad():
        x0 = ((x - (1 - a_t).sqrt() * tiny.eps(x, pos)) / a_t.sqrt())
        mean = a_prev.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t) * x
        var = beta * (1 - a_prev) / (1 - a_t)
        stepped = tiny.ddim_update(x, pos, prev, eta=1.0, noise=noise, clip=False)
    torch.testing.assert_close(stepped, mean + var.sqrt() * noise, rtol=1e-4, atol=1e-5)


def test_ddim_is_deterministic_and_ddpm_follows_its_generator(tiny):
    x_T = torch.randn(4, 1, 8, 8, generator=torch_generator(0, "x_T"))
    with torch.no_grad():
        assert torch.equal(tiny.sample(x_T, 4), tiny.sample(x_T, 4))
        first = tiny.sample(x_T, sampler="ddpm", generator=torch_generator(0, "ddpm"))
        again = tiny.sample(x_T, sampler="ddpm", generator=torch_generator(0, "ddpm"))
    assert torch.equal(first, again) and first.abs().max() <= 1.0
    with pytest.raises(ConfigError, match="generator"):
        tiny.sample(x_T, sampler="ddpm")


def test_sampling_steps_are_evenly_strided_and_end_at_the_least_noisy_step(tiny):
    assert tiny.sampling_steps(4) == [15, 11, 7, 3]
    assert tiny.sampling_steps() == list(range(15, -1, -1))
    with pytest.raises(ConfigError, match="1..16"):
        tiny.sampling_steps(17)


@pytest.mark.parametrize("options", [{}, {"grad_last_k": 2}, {"grad_last_k": 0}, {"checkpoint": True}])
def test_gradients_reach_the_starting_noise_through_the_sampler(tiny, options):
    x_T = torch.randn(2, 1, 8, 8, generator=torch_generator(0, "steer"), requires_grad=True)
    images = tiny.sample(x_T, steps=4, out_size=28, **options)
    assert images.shape == (2, 1, 28, 28)
    (grad,) = torch.autograd.grad(images.square().mean(), x_T)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_checkpointing_gives_the_same_gradient_as_storing_every_step(tiny):
    x_T = torch.randn(2, 1, 8, 8, generator=torch_generator(1, "steer"), requires_grad=True)
    grads = [torch.autograd.grad(tiny.sample(x_T, 4, checkpoint=c).sum(), x_T)[0] for c in (False, True)]
    torch.testing.assert_close(grads[0], grads[1])


def test_class_conditional_models_need_labels():
    seed_torch(0, "conditional")
    model = DiffusionModel(DiffusionConfig(widths=(8, 8), norm_groups=4, num_train_steps=16, n_classes=3))
    x_T = torch.randn(3, 1, 8, 8)
    assert model.sample(x_T, 2, y=torch.tensor([0, 1, 2])).shape == x_T.shape
    with pytest.raises(ConfigError, match="class-conditional"):
        model.sample(x_T, 2)


def test_training_loss_decreases_on_a_fixed_batch():
    seed_torch(0, "fit")
    model = DiffusionModel(TINY)
    x0 = torch.rand(32, 1, 8, 8, generator=torch_generator(0, "images")) * 2 - 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model.training_loss(x0, torch_generator(0, "same-noise"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_save_and_load_round_trip_and_refuse_mismatches(tiny, tmp_path):
    out = save_prior(tiny, tmp_path / "prior", Provenance("fedkd prior train ...", "digits", 0, {"steps": 1}))
    loaded = load_prior(out, expect={"dataset": "digits", "image_size": 8})
    x_T = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded.sample(x_T, 4), tiny.sample(x_T, 4).detach())
    assert not any(p.requires_grad for p in loaded.parameters())
    with pytest.raises(ConfigError, match="dataset = 'digits', but the config expects 'mnist5k'"):
        load_prior(out, expect={"dataset": "mnist5k"})
    with pytest.raises(ConfigError, match="missing meta.json"):
        load_prior(tmp_path / "nowhere")
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "kind": "conditional_gan"}))
    with pytest.raises(ConfigError, match="not a 'diffusion'"):
        load_prior(out)
    (out / "meta.json").write_text(json.dumps(meta))
    (out / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ConfigError, match="checksum"):
        load_prior(out)


def test_the_shipped_prior_loads_with_its_provenance():
    prior = load_prior("pretrained/prior-digits", expect={"dataset": "digits", "image_size": 8, "channels": 1})
    assert prior.meta["command"].startswith("fedkd prior train --dataset digits")
    assert prior.meta["seed"] == 0 and prior.num_steps == prior.config.num_train_steps
    x_T = torch.randn(2, 1, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(prior.sample(x_T, steps=8, grad_last_k=2).sum(), x_T)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
