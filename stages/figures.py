"""How the plot stage's figures look: matplotlib drawing, no decisions.

What goes into each figure (which images, which titles) is decided in stages/plot.py,
where the tests check it; this module only lays it out. Kept apart so that mutation
testing (`make mutation`) covers the logic, not figure sizes and font sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def image_grid(path: Path, images: np.ndarray, titles: list[str], colors: list[str] | None = None) -> None:
    """A near-square grid of 28x28 images with a title each (red marks a wrong prediction).

    Each image is pasted as pixels (`figimage`, 5 screen pixels per pixel) under its title:
    one matplotlib Axes per image cost 0.2 s each to lay out, most of the plot stage.
    """
    import matplotlib.pyplot as plt

    scale, cell_w, cell_h, pad = 5, 190, 180, 6  # pixels: the image is 28 * 5 = 140 of them
    cols = max(1, int(np.ceil(np.sqrt(len(images)))))
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig = plt.figure(figsize=(cols * cell_w / 100, rows * cell_h / 100), dpi=100)
    if not len(images):  # e.g. no misclassified images: say so rather than fail
        fig.text(0.5, 0.5, "none", ha="center", va="center")
    for i, image in enumerate(images):
        row, col = divmod(i, cols)
        left, top = col * cell_w, (rows - row) * cell_h  # figure pixels, origin bottom left
        big = np.kron(image.reshape(28, 28), np.ones((scale, scale), dtype=image.dtype))
        fig.figimage(big, xo=left + (cell_w - 28 * scale) // 2, yo=top - cell_h + pad, origin="upper",
                     cmap="gray_r", vmin=0, vmax=255)
        fig.text((left + cell_w / 2) / fig.bbox.width, (top - pad) / fig.bbox.height, titles[i],
                 ha="center", va="top", fontsize=8, color=colors[i] if colors else "black")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curves_figure(path: Path, curves: dict[str, dict[str, tuple[list[int], list[float]]]]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (metric, series) in zip(axes.flat, curves.items()):
        for split, (steps, values) in series.items():
            ax.plot([s + 1 for s in steps], values, marker=".", label=split)
        ax.set(title=metric, xlabel="epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_figure(path: Path, matrix: np.ndarray, classes: list[str]) -> None:
    """An annotated heatmap, drawn with matplotlib alone: seaborn's import (with pandas and
    scipy) cost more than the rest of the plot stage together."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6.5))
    ax.imshow(matrix, cmap="Blues", vmin=0)
    dark = matrix > matrix.max() / 2
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=8,
                color="white" if dark[row, col] else "black")
    ticks, slanted = range(len(classes)), max(map(len, classes)) > 3  # long names would overlap
    ax.set_xticks(ticks, classes, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(ticks, classes)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
