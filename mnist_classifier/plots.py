"""What the plot stage's figures show: which images, which titles, which counts.

The decisions live here, where the tests check them; mnist_classifier.figures only lays
them out. Random picks come from the `seed` param, so the figures are reproducible.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mnist_classifier.config import PlotParams
from mnist_classifier.errors import PipelineError
from mnist_classifier.figures import confusion_figure, curves_figure, image_grid


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


def prediction_panel(
    classes: list[str], y_true: np.ndarray, probs: np.ndarray, picks: np.ndarray
) -> tuple[list[str], list[str]]:
    """Titles `Predicted: p` over `True: t` (two lines: class names can be long), and red
    for the wrong ones."""
    y_pred = probs.argmax(1)
    titles = [f"Predicted: {classes[y_pred[i]]}\nTrue: {classes[y_true[i]]}" for i in picks]
    return titles, ["black" if y_pred[i] == y_true[i] else "red" for i in picks]


def error_panel(
    classes: list[str], y_true: np.ndarray, probs: np.ndarray, k: int
) -> tuple[np.ndarray, list[str]]:
    """The k most confidently wrong images, titled with the model's confidence in its answer."""
    worst = most_confident_errors(y_true, probs, k)
    y_pred = probs.argmax(1)
    return worst, [
        f"Predicted: {classes[y_pred[i]]} ({probs[i].max():.1%})\nTrue: {classes[y_true[i]]}" for i in worst
    ]


def make_figures(
    params: PlotParams, train: dict, test: dict, probs: np.ndarray, train_log: Path, out_dir: Path
) -> None:
    """Draw all five figures into out_dir; random picks come from the `seed` param."""
    rng = np.random.default_rng(params.seed)
    classes = [str(c) for c in test["classes"]]
    y_train, y_test = train["y"].argmax(1), test["y"].argmax(1)
    if len(probs) != len(y_test):
        raise PipelineError("the probabilities and the test set differ in length; rerun `dvc repro`.")

    pick = rng.choice(len(y_train), size=min(params.samples, len(y_train)), replace=False)
    image_grid(out_dir / "samples.png", train["x"][pick], [classes[i] for i in y_train[pick]])

    metrics = train_log / "plots" / "metrics"
    curves = {
        m: {s: read_curve(metrics / d / f"{m}.tsv") for s, d in (("train", "train"), ("validation", "eval"))}
        for m in ("loss", "accuracy")
    }
    curves_figure(out_dir / "training.png", curves)

    confusion_figure(
        out_dir / "confusion_matrix.png", confusion(y_test, probs.argmax(1), len(classes)), classes
    )

    pick = rng.choice(len(y_test), size=min(params.predictions, len(y_test)), replace=False)
    image_grid(out_dir / "predictions.png", test["x"][pick], *prediction_panel(classes, y_test, probs, pick))

    worst, titles = error_panel(classes, y_test, probs, params.misclassified)
    image_grid(out_dir / "misclassified.png", test["x"][worst], titles)
