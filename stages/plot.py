"""Stage 5, plot: PNG figures a person would rather look at than read.

Writes to reports/figures/: samples.png (training images with labels), training.png
(loss and accuracy per epoch), confusion_matrix.png, predictions.png (random test
images titled `Predicted: p, True: t`) and misclassified.png (the most confidently
wrong test images). No TensorFlow here: it works from the evaluate stage's probabilities.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from stages.common import PipelineError, atomic_output, load_npz, run_stage
from stages.params import PlotParams, plot_params, read_params


def read_curve(tsv: Path) -> tuple[list[int], list[float]]:
    """One dvclive metric series: (steps, values)."""
    try:
        with open(tsv, newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))[1:]
    except FileNotFoundError:
        raise PipelineError(f"{tsv} not found; run `dvc repro train`.") from None
    return [int(r[0]) for r in rows], [float(r[1]) for r in rows]


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Counts of (true, predicted) pairs: rows are true classes."""
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def most_confident_errors(y_true: np.ndarray, probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k wrong predictions made with the highest confidence."""
    wrong = np.flatnonzero(probs.argmax(1) != y_true)
    order = np.argsort(-probs[wrong].max(1), kind="stable")
    return wrong[order[:k]]


def prediction_panel(classes: list[str], y_true: np.ndarray, probs: np.ndarray,
                     picks: np.ndarray) -> tuple[list[str], list[str]]:
    """Titles `Predicted: p, True: t` for the picked images, and red for the wrong ones."""
    y_pred = probs.argmax(1)
    titles = [f"Predicted: {classes[y_pred[i]]}, True: {classes[y_true[i]]}" for i in picks]
    return titles, ["black" if y_pred[i] == y_true[i] else "red" for i in picks]


def error_panel(classes: list[str], y_true: np.ndarray, probs: np.ndarray,
                k: int) -> tuple[np.ndarray, list[str]]:
    """The k most confidently wrong images, titled with the model's confidence in its answer."""
    worst = most_confident_errors(y_true, probs, k)
    y_pred = probs.argmax(1)
    return worst, [f"Predicted: {classes[y_pred[i]]} ({probs[i].max():.1%}), True: {classes[y_true[i]]}"
                   for i in worst]


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


def make_figures(params: PlotParams, train: dict, test: dict, probs: np.ndarray,
                 train_log: Path, out_dir: Path) -> None:
    """Draw all five figures into out_dir; random picks come from the `seed` param."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    rng = np.random.default_rng(params.seed)
    classes = [str(c) for c in test["classes"]]
    y_train, y_test = train["y"].argmax(1), test["y"].argmax(1)
    if len(probs) != len(y_test):
        raise PipelineError("the probabilities and the test set differ in length; rerun `dvc repro`.")

    pick = rng.choice(len(y_train), size=min(params.samples, len(y_train)), replace=False)
    image_grid(out_dir / "samples.png", train["x"][pick], [classes[i] for i in y_train[pick]])

    metrics = train_log / "plots" / "metrics"
    curves = {m: {s: read_curve(metrics / d / f"{m}.tsv") for s, d in (("train", "train"), ("validation", "eval"))}
              for m in ("loss", "accuracy")}
    curves_figure(out_dir / "training.png", curves)

    confusion_figure(out_dir / "confusion_matrix.png", confusion(y_test, probs.argmax(1), len(classes)), classes)

    pick = rng.choice(len(y_test), size=min(params.predictions, len(y_test)), replace=False)
    image_grid(out_dir / "predictions.png", test["x"][pick], *prediction_panel(classes, y_test, probs, pick))

    worst, titles = error_panel(classes, y_test, probs, params.misclassified)
    image_grid(out_dir / "misclassified.png", test["x"][worst], titles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with train/test.npz")
    parser.add_argument("--probs", type=Path, required=True)
    parser.add_argument("--train-log", type=Path, required=True, help="dvclive folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = plot_params(read_params())
    train = load_npz(args.data / "train.npz", ("x", "y"))
    test = load_npz(args.data / "test.npz", ("x", "y", "classes"))
    probs = load_npz(args.probs, ("probs",))["probs"]
    with atomic_output(args.out, directory=True) as tmp:
        make_figures(params, train, test, probs, args.train_log, tmp)


if __name__ == "__main__":
    run_stage("plot", main)
