"""How the figures look: matplotlib and seaborn drawing, no decisions.

What goes into each figure (which images, which titles) is decided in
mnist_classifier.plots and mnist_classifier.compare, where the tests check it; this module
only lays it out. Kept apart so that mutation testing (`make mutation`) covers the logic,
not figure sizes and font sizes. seaborn draws where it does the work (an annotated
heatmap, a spread over seeds) and is imported only in those functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():  # -> the matplotlib.pyplot module
    """matplotlib's pyplot, drawing to files only (the Agg backend): no display is needed,
    and none is touched on a machine that has one. Every figure of the project comes here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(path: Path, images: np.ndarray, titles: list[str], colors: list[str] | None = None) -> None:
    """A near-square grid of 28x28 images with a title each (red marks a wrong prediction).

    Each image is pasted as pixels (`figimage`, 5 screen pixels per pixel) under its title:
    one matplotlib Axes per image took most of the plot stage to lay out (docs/performance.md).
    """
    plt = pyplot()

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
        fig.figimage(
            big,
            xo=left + (cell_w - 28 * scale) // 2,
            yo=top - cell_h + pad,
            origin="upper",
            cmap="gray_r",
            vmin=0,
            vmax=255,
        )
        fig.text(
            (left + cell_w / 2) / fig.bbox.width,
            (top - pad) / fig.bbox.height,
            titles[i],
            ha="center",
            va="top",
            fontsize=8,
            color=colors[i] if colors else "black",
        )
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curves_figure(path: Path, curves: dict[str, dict[str, tuple[list[int], list[float]]]]) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (metric, series) in zip(axes.flat, curves.items()):
        for split, (steps, values) in series.items():
            ax.plot([s + 1 for s in steps], values, marker=".", label=split)
        ax.set(title=metric, xlabel="epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")  # no label cut, however long
    plt.close(fig)


def confusion_figure(path: Path, matrix: np.ndarray, classes: list[str]) -> None:
    """seaborn's annotated heatmap: counts in each cell, text colour set by the cell's shade."""
    plt = pyplot()
    from mnist_classifier.imports import load

    sns = load("seaborn")  # without SciPy, which it need not load

    fig, ax = plt.subplots(figsize=(8, 6.5))
    sns.heatmap(
        matrix,
        annot=True,
        fmt="d",
        cmap="Blues",
        vmin=0,
        cbar=True,
        square=True,
        xticklabels=classes,
        yticklabels=classes,
        annot_kws={"fontsize": 8},
        ax=ax,
    )
    if max(map(len, classes)) > 3:  # long names (Fashion-MNIST) would overlap
        ax.tick_params(axis="x", labelrotation=30)
        plt.setp(ax.get_xticklabels(), ha="right")
    ax.tick_params(axis="y", labelrotation=0)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spread_figure(path: Path, groups: dict[str, list[float]], metric: str) -> None:
    """Each group's runs as dots over a box: the spread over seeds that a mean ± sd hides."""
    from mnist_classifier.imports import load

    sns = load("seaborn")  # without SciPy, which it need not load

    plt = pyplot()

    labels = [label for label, values in groups.items() for _ in values]
    values = [v for vs in groups.values() for v in vs]
    longest = max(len(label) for label in groups)  # the labels are the groups' params: room for them
    fig, ax = plt.subplots(figsize=(7 + 0.07 * longest, 0.6 * len(groups) + 1.6))
    sns.boxplot(x=values, y=labels, color="0.9", width=0.5, fliersize=0, ax=ax)
    sns.stripplot(x=values, y=labels, color="C0", size=6, jitter=0.15, ax=ax)
    ax.set(xlabel=metric, ylabel="", title=f"{metric} over seeds, per group")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")  # no label cut, however long
    plt.close(fig)
