"""Sample grids as PNG: the images of several models from the same starting noise, side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def tile(images: torch.Tensor, nrow: int) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> one (rows*(H+1)-1, nrow*(W+1)-1[, C]) array in [0, 1], 1-pixel white gaps."""
    x = ((images.detach().float().clamp(-1, 1) + 1) / 2).cpu().numpy()
    n, c, h, w = x.shape
    rows = -(-n // nrow)
    canvas = np.ones((rows * (h + 1) - 1, nrow * (w + 1) - 1, c), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, nrow)
        canvas[r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = x[i].transpose(1, 2, 0)
    return canvas[..., 0] if c == 1 else canvas


def save_grids(panels: dict[str, torch.Tensor], path: str | Path, nrow: int = 10, per_row: int = 4) -> Path:
    """One titled panel per model (``{"teacher": images, ...}``), ``per_row`` a row, in one PNG; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(per_row, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, images) in zip(axes.flat, panels.items(), strict=False):
        ax.imshow(tile(images, nrow), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
