"""A small diffusion model on diffusers' ``UNet2DModel``, with its own differentiable sampler.

Notation (Ho et al., 2020; Song et al., 2021): a T-step forward process with cumulative signal
``alpha_bar_t`` gives ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``; the network predicts
``eps`` from ``(x_t, t)`` and trains on ``||eps_theta(x_t, t) - eps||^2`` (the DDPM objective).

A model works on its own **steps** ``0..S-1``: step ``i`` has noise level ``alpha_bar[i]`` and is fed to the
UNet as the absolute training timestep ``timesteps[i]``. A teacher has all ``S = T`` steps; a student
distilled from it keeps an increasing subsequence of them (``schedule.fold(c)`` keeps every c-th, so the
student's schedule is ``alpha_bar'_t = alpha_bar_{c t}`` with 1-based step numbers). Feeding the absolute
timestep keeps the meaning of the UNet's time input the same for every model in a distillation chain.

Sampling goes from ``x_T`` over a subsequence of the model's steps with one update rule (DDIM, Eq. 12 of
Song et al.)::

    x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    sigma  = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)
    x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps + sigma z

``eta = 0`` is deterministic DDIM; ``eta = 1`` is DDPM's ancestral sampling with the posterior variance
(Song et al., Eq. 16), so ``sampler="ddpm"`` and ``"ddim"`` share the loop. The loop is plain autograd, so
images are differentiable w.r.t. ``x_T`` (diffusers' pipelines run under ``no_grad``); ``grad_last_k``
bounds memory by building the graph for the last k steps only, passing the gradient straight through
the earlier ones, and ``checkpoint`` recomputes each step in the backward pass instead of storing it.

>>> prior = load_prior("pretrained/prior-digits", expect={"dataset": "digits"})     # doctest: +SKIP
>>> x_T = torch.randn(64, 1, 8, 8, requires_grad=True)                              # doctest: +SKIP
>>> images = prior.sample(x_T, steps=8, grad_last_k=2, out_size=28)  # (64, 1, 28, 28) in [-1, 1]  # doctest: +SKIP

diffusers is imported inside the functions that build a UNet, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute

from fedkd.errors import ConfigError

if TYPE_CHECKING:
    from fedkd.generative.artifacts import Provenance

PRIOR_KIND = "diffusion"
Sampler = Literal["ddim", "ddpm"]


@dataclass(frozen=True)
class NoiseSchedule:
    """Cumulative signal ``alpha_bar`` (decreasing) at a model's steps, and their absolute ``timesteps``."""

    alpha_bar: torch.Tensor
    timesteps: torch.Tensor

    @classmethod
    def cosine(cls, num_train_steps: int) -> NoiseSchedule:
        """The cosine schedule of Nichol & Dhariwal (2021), as diffusers' ``squaredcos_cap_v2`` computes it."""
        from diffusers import DDPMScheduler

        scheduler = DDPMScheduler(num_train_timesteps=num_train_steps, beta_schedule="squaredcos_cap_v2")
        return cls(scheduler.alphas_cumprod.float().clone(), torch.arange(num_train_steps))

    def __len__(self) -> int:
        return len(self.timesteps)

    def subsequence(self, indices: Sequence[int]) -> NoiseSchedule:
        """The steps at ``indices`` (strictly increasing positions in this schedule)."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        if len(idx) == 0 or (idx[1:] <= idx[:-1]).any() or idx[0] < 0 or idx[-1] >= len(self):
            raise ConfigError(f"a step subsequence must be strictly increasing within 0..{len(self) - 1}, "
                              f"got {idx.tolist()}")
        return NoiseSchedule(self.alpha_bar[idx], self.timesteps[idx])

    def fold(self, c: int) -> NoiseSchedule:
        """Every c-th step, ending at the noisiest: positions ``c (t + 1) - 1`` for t = 0..S/c - 1.

        With 1-based step numbers this is ``alpha_bar'_t = alpha_bar_{c t}``, t = 1..S/c.
        """
        if c < 1 or len(self) % c:
            raise ConfigError(f"fold factor must divide the {len(self)} steps, got {c}")
        return self.subsequence(range(c - 1, len(self), c))

    def positions_of(self, timesteps: torch.Tensor) -> torch.Tensor:
        """This schedule's step positions that hold the absolute ``timesteps`` (all must be present)."""
        lookup = {int(t): i for i, t in enumerate(self.timesteps)}
        missing = [int(t) for t in timesteps if int(t) not in lookup]
        if missing:
            raise ConfigError(f"timesteps {missing} are not steps of this schedule {self.timesteps.tolist()}")
        return torch.tensor([lookup[int(t)] for t in timesteps], dtype=torch.long)


@dataclass(frozen=True)
class DiffusionConfig:
    """Everything needed to rebuild a model: image shape, UNet widths, training steps T, the steps it keeps.

    ``timesteps`` empty means all T steps (a teacher or prior); a student lists the absolute timesteps it
    keeps. ``n_classes`` > 0 adds a class embedding (class-conditional sampling); 0 is unconditional.
    """

    image_size: int = 8
    channels: int = 1
    widths: tuple[int, ...] = (16, 32)
    layers_per_block: int = 1
    norm_groups: int = 8
    num_train_steps: int = 64
    timesteps: tuple[int, ...] = ()
    n_classes: int = 0

    def validate(self) -> None:
        downsamples = len(self.widths) - 1
        if not self.widths or any(w < 1 or w % self.norm_groups for w in self.widths):
            raise ConfigError(f"UNet widths must be positive multiples of norm_groups={self.norm_groups}, "
                              f"got {list(self.widths)}")
        if self.image_size % 2 ** downsamples:
            raise ConfigError(f"image size {self.image_size} must be divisible by 2^{downsamples} "
                              f"for {len(self.widths)} UNet levels")
        if self.num_train_steps < 2:
            raise ConfigError(f"num_train_steps must be >= 2, got {self.num_train_steps}")
        steps = list(self.timesteps)
        if steps and (steps != sorted(set(steps)) or steps[0] < 0 or steps[-1] >= self.num_train_steps):
            raise ConfigError(f"timesteps must be strictly increasing within 0..{self.num_train_steps - 1}, "
                              f"got {steps}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DiffusionConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def build_unet(config: DiffusionConfig) -> nn.Module:
    """A diffusers ``UNet2DModel`` without attention (cheap on a CPU), one level per entry of ``widths``."""
    from diffusers import UNet2DModel

    levels = len(config.widths)
    return UNet2DModel(
        sample_size=config.image_size, in_channels=config.channels, out_channels=config.channels,
        block_out_channels=tuple(config.widths), layers_per_block=config.layers_per_block,
        down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
        norm_num_groups=config.norm_groups, add_attention=False,
        num_class_embeds=config.n_classes or None,
    )


class DiffusionModel(nn.Module):
    """An eps-predicting UNet and the noise schedule of its steps; see the module docstring for the math."""

    def __init__(self, config: DiffusionConfig, schedule: NoiseSchedule | None = None) -> None:
        super().__init__()
        config.validate()
        full = schedule or NoiseSchedule.cosine(config.num_train_steps)
        if len(full) != config.num_train_steps:
            raise ConfigError(f"schedule has {len(full)} steps, config says {config.num_train_steps}")
        self.config = config
        self.schedule = full.subsequence(full.positions_of(torch.tensor(config.timesteps))) if config.timesteps \
            else full
        self.unet = build_unet(config)
        self.meta: dict[str, Any] = {}  # what ``load_prior`` read from meta.json (provenance, training split)

    @property
    def num_steps(self) -> int:
        return len(self.schedule)

    def with_steps(self, schedule: NoiseSchedule, **changes: Any) -> DiffusionModel:
        """A fresh (untrained) model on ``schedule``'s steps; ``changes`` alter the architecture (e.g. widths)."""
        config = dataclasses.replace(self.config, timesteps=tuple(int(t) for t in schedule.timesteps), **changes)
        return DiffusionModel(config)

    def eps(self, x: torch.Tensor, step: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted noise at the model's own steps ``step`` (B,) (class labels ``y`` if conditional)."""
        self._check_labels(y)
        timesteps = self.schedule.timesteps.to(x.device)[step]
        return self.unet(x, timesteps, class_labels=y).sample

    def eps_and_features(self, x: torch.Tensor, step: torch.Tensor,
                         y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted noise and the last hidden feature map (the input of the UNet's output convolution)."""
        captured: list[torch.Tensor] = []
        handle = self.unet.conv_out.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        try:
            eps = self.eps(x, step, y)
        finally:
            handle.remove()
        return eps, captured[0]

    def add_noise(self, x0: torch.Tensor, step: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` at the model's steps ``step`` (B,)."""
        a = self.schedule.alpha_bar.to(x0.device)[step].view(-1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def training_loss(self, x0: torch.Tensor, generator: torch.Generator,
                      y: torch.Tensor | None = None) -> torch.Tensor:
        """The DDPM objective ``E ||eps_theta(x_t, t) - eps||^2`` with t uniform over the model's steps."""
        step = torch.randint(0, self.num_steps, (len(x0),), generator=generator, device=generator.device).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
        return F.mse_loss(self.eps(self.add_noise(x0, step, noise), step, y), noise)

    def sampling_steps(self, steps: int | None = None) -> list[int]:
        """The model's step positions a ``steps``-step sampler visits, noisiest first (evenly strided)."""
        steps = self.num_steps if steps is None else steps
        if not 1 <= steps <= self.num_steps:
            raise ConfigError(f"sampling steps must be in 1..{self.num_steps} for this model, got {steps}")
        return [round((k + 1) * self.num_steps / steps) - 1 for k in reversed(range(steps))]

    def sample(self, x_T: torch.Tensor, steps: int | None = None, *, sampler: Sampler = "ddim",
               y: torch.Tensor | None = None, grad_last_k: int | None = None, checkpoint: bool = False,
               clip: bool = True, generator: torch.Generator | None = None,
               out_size: int | None = None) -> torch.Tensor:
        """Images in [-1, 1] from the starting noise ``x_T`` after ``steps`` DDIM (eta 0) or DDPM (eta 1) steps.

        The result is differentiable w.r.t. ``x_T`` and the weights when grad is enabled. ``grad_last_k``
        builds the graph for the last k steps only and passes the gradient straight through the earlier ones
        (their Jacobian taken as the identity; 0 makes the whole sampler straight-through), so memory is that
        of k steps. ``checkpoint`` recomputes each step during backward instead of storing it. ``clip`` clamps
        each ``x0_hat`` to [-1, 1]. ``sampler="ddpm"`` draws its noise from ``generator``. ``out_size``
        resizes the result (see ``resize_images``).
        """
        if sampler not in ("ddim", "ddpm"):
            raise ConfigError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        if sampler == "ddpm" and generator is None:
            raise ConfigError("DDPM sampling draws fresh noise at every step: pass generator=")
        expected = (self.config.channels, self.config.image_size, self.config.image_size)
        if x_T.dim() != 4 or tuple(x_T.shape[1:]) != expected:
            raise ConfigError(f"x_T must be shaped (B, {', '.join(map(str, expected))}), got {tuple(x_T.shape)}")
        order = self.sampling_steps(steps)
        k = len(order) if grad_last_k is None else grad_last_k
        if not 0 <= k <= len(order):
            raise ConfigError(f"grad_last_k must be in 0..{len(order)} for {len(order)} steps, got {grad_last_k}")
        eta = 0.0 if sampler == "ddim" else 1.0
        x = x_T
        for n, (pos, prev) in enumerate(zip(order, [*order[1:], -1], strict=True)):
            if n == len(order) - k and n > 0:
                x = x.detach() + (x_T - x_T.detach())  # straight-through: d x / d x_T = I for the untracked steps
            noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device) if eta else None
            args = (x, torch.full((len(x),), pos, device=x.device), torch.full((len(x),), prev, device=x.device), eta,
                    noise, y, clip)
            if n < len(order) - k:
                with torch.no_grad():
                    x = self.ddim_update(*args)
            elif checkpoint and torch.is_grad_enabled():
                x = recompute(self.ddim_update, *args, use_reentrant=False)
            else:
                x = self.ddim_update(*args)
        if k == 0:
            x = x.detach() + (x_T - x_T.detach())
        x = x.clamp(-1.0, 1.0)
        return resize_images(x, out_size) if out_size else x

    def ddim_update(self, x: torch.Tensor, pos: torch.Tensor, prev: torch.Tensor, eta: float = 0.0,
                    noise: torch.Tensor | None = None, y: torch.Tensor | None = None,
                    clip: bool = True) -> torch.Tensor:
        """One update of each image from its step ``pos`` to its step ``prev`` ((B,) positions; ``-1`` = clean).

        The update of the module docstring; ``noise`` (needed when ``eta`` > 0) is the ``z`` there.
        """
        ones = torch.ones((), device=x.device)
        alpha_bar = self.schedule.alpha_bar.to(x.device)
        a_t = alpha_bar[pos].view(-1, 1, 1, 1)
        a_prev = torch.where(prev >= 0, alpha_bar[prev.clamp(min=0)], ones).view(-1, 1, 1, 1)
        eps = self.eps(x, pos, y)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        x_prev = a_prev.sqrt() * x0
        if eta == 0:
            return x_prev + (1 - a_prev).sqrt() * eps
        if noise is None:
            raise ConfigError("a stochastic update (eta > 0) needs noise")
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        return x_prev + (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps + sigma * noise

    def _check_labels(self, y: torch.Tensor | None) -> None:
        if self.config.n_classes and y is None:
            raise ConfigError(f"this model is class-conditional ({self.config.n_classes} classes): pass y=")
        if not self.config.n_classes and y is not None:
            raise ConfigError("this model is unconditional: it takes no class labels y")


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size`` x ``size`` (differentiable), clamped to [-1, 1].

    This is how an 8x8 prior feeds a 28x28 teacher; ``digits28`` was made from ``digits`` the same way.
    """
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1.0, 1.0)


def save_prior(model: DiffusionModel, out: str | Path, provenance: Provenance) -> Path:
    """Write ``model`` (a prior, teacher or student) as safetensors plus ``meta.json``; returns ``out``."""
    from fedkd.generative.artifacts import save_model

    meta = {"kind": PRIOR_KIND, **provenance.to_dict(), "config": model.config.to_dict(),
            "image_size": model.config.image_size, "channels": model.config.channels,
            "num_train_steps": model.config.num_train_steps, "num_steps": model.num_steps,
            "n_classes": model.config.n_classes}
    return save_model(model.unet.state_dict(), meta, out)


def load_prior(path: str | Path, expect: Mapping[str, Any] | None = None) -> DiffusionModel:
    """The diffusion model saved at ``path`` (eval mode, no gradients on its weights), checked against ``expect``.

    ``expect`` names metadata the caller relies on, e.g. ``{"dataset": "digits", "image_size": 8}``; any
    missing file, checksum mismatch or differing value is a ``ConfigError`` that says what differs.
    """
    from fedkd.generative.artifacts import load_model

    tensors, meta = load_model(path, PRIOR_KIND, expect,
                               how_to_train=f"fedkd prior train --dataset digits --out {path}")
    model = DiffusionModel(DiffusionConfig.from_dict(meta["config"]))
    try:
        model.unet.load_state_dict(tensors)
    except RuntimeError as err:
        raise ConfigError(f"diffusion model {str(path)!r}: weights do not fit its recorded config ({err})") from None
    model.eval().requires_grad_(False)
    model.meta = meta
    return model
