"""Query transforms: how a prior's small images are drawn into the teacher's frame.

A prior learnt public images that differ from the teacher's in simple ways (the UCI digits are 8x8 scans, so
upsampled into MNIST's 20x20 box their strokes are thinner and greyer than MNIST's). Teachers of other
architectures read such images very differently (``benchmarks/teacher_panel.py``): one reads most of them
correctly, another answers one class for almost all. A ``QueryTransform`` frames the images into a centred box
(``fedkd.distill.aedm.frame_images``) and then thickens strokes (a max-pool over ``thicken + 1`` pixels; the
background is -1, ink is higher), blurs (3x3 mean), raises ink contrast (``contrast`` times the height above the
background, clipped), sharpens (``ink_level``, below) and jitters the position (``jitter`` pixels, each image its own
shift). Every step is differentiable almost everywhere, so steering can pass through it.

**Sharpening** (``ink_level = (lo, hi)``). The UCI digits' prior decodes blurred grey blobs that fill the box, where
MNIST writes sharp strokes. ``clamp(INK_GAIN * (x - t), -1, 1)`` keeps the level set of the blob above ``t`` as
full ink and the rest as background: a sharp digit whose strokes thin as ``t`` rises. Each image draws its own
``t`` uniformly in ``[lo, hi]`` (``lo == hi``: one level for all), so the queries carry strokes of many widths.

>>> small = -torch.ones(1, 1, 8, 8); small[0, 0, 2:6, 3:5] = 0.0
>>> queries = QueryTransform(box=20, thicken=1, contrast=2.0)(small, 28)
>>> queries.shape, float(queries.min()), float(queries.max())
(torch.Size([1, 1, 28, 28]), -1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class QueryTransform:
    """Framing into a ``box`` x ``box`` centred box (0: the whole frame), then the optional steps above."""

    box: int = 20
    thicken: int = 0
    blur: bool = False
    contrast: float = 1.0
    jitter: int = 0
    ink_level: tuple[float, float] | None = None

    def __call__(self, small: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        from fedkd.distill.aedm import frame_images

        x = frame_images(small, size, self.box)
        if self.thicken:
            k = self.thicken + 1
            x = F.max_pool2d(F.pad(x, (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2), value=-1.0), k, stride=1)
        if self.blur:
            x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), value=-1.0), 3, stride=1)
        if self.contrast != 1.0:
            x = (self.contrast * (x + 1) - 1).clamp(-1.0, 1.0)
        if self.ink_level is not None:
            x = sharpened(x, *self.ink_level, generator)
        if self.jitter:
            x = shifted(x, self.jitter, generator)
        return x

    @property
    def name(self) -> str:
        parts = [f"box{self.box}"] + ([f"thick{self.thicken + 1}"] if self.thicken else []) + \
            (["blur"] if self.blur else []) + ([f"contrast{self.contrast:g}"] if self.contrast != 1.0 else []) + \
            ([f"jitter{self.jitter}"] if self.jitter else []) + \
            ([f"ink{self.ink_level[0]:g}to{self.ink_level[1]:g}"] if self.ink_level is not None else [])
        return "+".join(parts)


#: How steeply ``sharpened`` maps the height above a level to ink: a blur ramp half a unit wide becomes a hard edge.
INK_GAIN = 4.0


def sharpened(x: torch.Tensor, lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    """Each image's level set above its own level ``t`` (uniform in ``[lo, hi]``) as ink, on background -1."""
    u = torch.rand((len(x), 1, 1, 1), generator=generator, device=None if generator is None else generator.device)
    levels = lo + (hi - lo) * u.to(x.device)
    return (INK_GAIN * (x - levels)).clamp(-1.0, 1.0)


def shifted(x: torch.Tensor, pixels: int, generator: torch.Generator | None) -> torch.Tensor:
    """Each image moved by its own whole-pixel shift in ``[-pixels, pixels]`` on both axes, background filled."""
    shifts = torch.randint(-pixels, pixels + 1, (len(x), 2), generator=generator)
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    size = x.shape[-1]
    return torch.stack([padded[i, :, pixels - dy:pixels - dy + size, pixels - dx:pixels - dx + size]
                        for i, (dy, dx) in enumerate(shifts.tolist())])


def candidates(box: int, size: int) -> list[QueryTransform]:
    """The transforms AEDM's adaptation chooses among (``aedm.adapt_queries``): framing into ``box`` (0: the whole
    ``size`` frame) or a box 4 pixels smaller or larger, each with strokes as they are or thickened by a pixel, and
    ink as it is or at twice the contrast; ``box`` as it is comes first. All are mild: each keeps a digit a digit,
    so the teacher's answers, not a label, can tell which one it reads best.
    """
    box = box or size
    boxes = [box] + sorted(b for b in {box - 4, min(box + 4, size)} if 0 < b != box)
    return [QueryTransform(box=b, thicken=thicken, contrast=contrast)
            for b in boxes for thicken in (0, 1) for contrast in (1.0, 2.0)]


#: The diagnostic's transforms (``benchmarks/teacher_panel.py``), by name: AEDM's candidates around the shipped
#: ``query_box = 20`` (``box20`` alone is the shipped framing), and three it does not try: thicker strokes still,
#: blur and position jitter.
TRANSFORMS: dict[str, QueryTransform] = {t.name: t for t in [
    *candidates(20, 28), QueryTransform(thicken=2), QueryTransform(blur=True), QueryTransform(jitter=2)]}


def query_transform(name: str, size: int, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The named transform of ``TRANSFORMS`` as a function of the small images, its jitter seeded by ``seed``."""
    from fedkd.seeding import torch_generator

    transform, generator = TRANSFORMS[name], torch_generator(seed, "query-transform", name)
    return lambda small: transform(small, size, generator)
