"""Printed digits rendered from the fonts that ship with matplotlib: public digits that are sharp at any size.

The UCI digits are 8x8 scans. Drawn into MNIST's 20x20 box their strokes are blurred grey ramps, and teachers of
some architectures read them as one class (``benchmarks/teacher_panel.py``): a prior that learnt only them asks
such a teacher nothing it can answer. Digits printed in many typefaces are another public source of the same
classes. They need no download (matplotlib, a dependency, ships DejaVu, STIX and Computer Modern), no teacher has
seen them, and they can be drawn at the resolution a prior needs.

Each image is one digit of one font, varied the way handwriting varies a printed glyph: stroke width, slant
(shear), rotation and width-to-height ratio, drawn from one seed. The glyph's bounding box then fills a centred
square ``size`` x ``size`` image (its longer side spans the image, as the UCI digits fill their 8x8 frame), ink
high (1) on a low (-1) background, the range every image set here uses. The variations are fixed in this module,
not tuned: they are the ranges of a legible digit, and no teacher's answers chose them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fedkd.errors import DataError
from fedkd.seeding import numpy_rng

if TYPE_CHECKING:
    from PIL import ImageFont

#: The typefaces, as files of matplotlib's ``mpl-data/fonts/ttf``: every text face there that has the ten digits
#: (the symbol, display and fallback faces are left out). Fixed by name so the set does not change with the
#: files a matplotlib release adds.
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf",
)

#: Rendering canvas and glyph size in pixels: large enough that the variations act on smooth outlines.
CANVAS, GLYPH = 96, 56
#: The variations, uniform in each range: extra stroke width in canvas pixels (a regular face's stroke is ~6),
#: rotation in degrees, horizontal shear, and width scale.
STROKE, ROTATION, SHEAR, WIDTH = (0, 4), (-12.0, 12.0), (-0.3, 0.3), (0.75, 1.15)


def font_dir() -> Path:
    """matplotlib's bundled TrueType fonts."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def font_paths() -> list[Path]:
    """The files of ``FONT_FILES``; refuses a matplotlib that lacks one, since the set would silently change."""
    root = font_dir()
    missing = [name for name in FONT_FILES if not (root / name).is_file()]
    if missing:
        raise DataError(f"the font digits need matplotlib's bundled fonts {missing} in {root}; "
                        f"reinstall matplotlib (>= 3.8)")
    return [root / name for name in FONT_FILES]


def render_digit(face: ImageFont.FreeTypeFont, digit: int, rng: np.random.Generator) -> np.ndarray:
    """One varied glyph of ``digit`` in the loaded font ``face``, cropped to its ink: float32 in [0, 1], ink high."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    stroke = int(rng.integers(STROKE[0], STROKE[1] + 1))
    ImageDraw.Draw(canvas).text((CANVAS // 2, CANVAS // 2), str(digit), fill=255, anchor="mm", font=face,
                                stroke_width=stroke, stroke_fill=255)
    angle, shear, width = rng.uniform(*ROTATION), rng.uniform(*SHEAR), rng.uniform(*WIDTH)
    glyph = canvas.rotate(angle, resample=Image.BILINEAR)
    half = CANVAS / 2
    glyph = glyph.transform((CANVAS, CANVAS), Image.AFFINE,
                            (1 / width, shear, half - half / width - shear * half, 0, 1, 0), resample=Image.BILINEAR)
    ink = np.asarray(glyph, dtype=np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.05)
    return ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def fit_box(ink: np.ndarray, size: int) -> np.ndarray:
    """``ink`` resized (area-averaged, aspect kept) so its longer side is ``size``, centred in a square image."""
    from PIL import Image

    h, w = ink.shape
    scale = size / max(h, w)
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(ink, mode="F").resize(shape, Image.BOX), dtype=np.float32)
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    out[top:top + small.shape[0], left:left + small.shape[1]] = np.clip(small, 0.0, 1.0)
    return out


def render_font_digits(size: int, per_font: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``per_font`` varied images of each digit in each font: images (N, 1, size, size) in [-1, 1], labels (N,).

    Ordered by font, then digit, then copy; ``seed`` draws every variation, so the set is the same on every run.
    """
    if size < 4 or per_font < 1:
        raise DataError(f"font digits need size >= 4 and per_font >= 1, got size={size}, per_font={per_font}")
    from PIL import ImageFont

    rng = numpy_rng(seed, "font-digits")
    images, labels = [], []
    for font in font_paths():
        face = ImageFont.truetype(str(font), GLYPH)
        for digit in range(10):
            for _ in range(per_font):
                images.append(fit_box(render_digit(face, digit, rng), size))
                labels.append(digit)
    return np.stack(images)[:, None] * 2.0 - 1.0, np.asarray(labels, dtype=np.int64)
