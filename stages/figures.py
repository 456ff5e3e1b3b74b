"""How the plot stage's figures look: matplotlib and seaborn drawing, no decisions.

What goes into each figure (which images, which titles) is decided in stages/plot.py,
where the tests check it; this module only lays it out. Kept apart so that mutation
testing (`make mutation`) covers the logic, not figure sizes and font sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def image_grid(path: Path, images: np.ndarray, titles: list[str], colors: list[str] | None = None) -> None:
    """A near-square grid of 28x28 images with one title each (red marks a wrong prediction)."""
    import matplotlib.pyplot as plt

    cols = max(1, int(np.ceil(np.sqrt(len(images)))))
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    if not len(images):  # e.g. no misclassified images: say so rather than fail
        axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(titles[i], fontsize=8, color=(colors[i] if colors else "black"))
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92, wspace=0.1, hspace=0.35)
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
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 6.5))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False,
                xticklabels=classes, yticklabels=classes, ax=ax)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
