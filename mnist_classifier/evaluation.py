"""Scoring a model on the test set: the metrics DVC tracks and the rows its plots read.

The metrics file holds test loss and accuracy, macro precision/recall/F1 and per-class
figures (scikit-learn's definitions); the predictions file one `actual,predicted` row per
test image for DVC's confusion-matrix template; the probabilities feed the plot stage.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mnist_classifier.files import atomic_output, save_npz

# Inference only: a large batch does the same arithmetic in far fewer steps.
EVAL_BATCH_SIZE = 4096


SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (rows, columns): the digit, up, down, left, right


def shifted(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Each flat square picture of x moved by whole pixels, the border filled with 0 (no ink)."""
    side = math.isqrt(x.shape[1])
    images, out = x.reshape(-1, side, side), np.zeros((len(x), side, side), dtype=x.dtype)
    dst = (slice(max(rows, 0), side + min(rows, 0)), slice(max(cols, 0), side + min(cols, 0)))
    src = (slice(max(-rows, 0), side + min(-rows, 0)), slice(max(-cols, 0), side + min(-cols, 0)))
    out[:, dst[0], dst[1]] = images[:, src[0], src[1]]
    return out.reshape(len(x), -1)


def predict_probs(model: Any, x: np.ndarray, shift_average: bool = False) -> np.ndarray:
    """The class probabilities for x; with shift_average, the mean of the model's answers for
    each digit and its four 1-pixel shifts (test-time augmentation: five passes, not one)."""
    if not shift_average:
        return model.predict(x, batch_size=EVAL_BATCH_SIZE, verbose=0)
    views = [model.predict(shifted(x, r, c), batch_size=EVAL_BATCH_SIZE, verbose=0) for r, c in SHIFTS]
    return np.mean(views, axis=0)


def test_loss(y_onehot: np.ndarray, probs: np.ndarray) -> float:
    """The training loss (categorical cross-entropy) on the test set, from one predict pass."""
    import keras

    return float(np.mean(keras.losses.categorical_crossentropy(y_onehot, probs)))


def score(y_true: np.ndarray, probs: np.ndarray, loss: float, classes: list[str]) -> dict[str, Any]:
    """Summary and per-class metrics from true labels and predicted probabilities."""
    from mnist_classifier.imports import load

    skm = load("sklearn.metrics")  # without pandas, which it need not load
    labels = list(range(len(classes)))
    y_pred = probs.argmax(axis=1)
    prfs = skm.precision_recall_fscore_support
    macro = prfs(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    per = prfs(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "test": {
            "loss": round(float(loss), 6),
            "accuracy": round(float(skm.accuracy_score(y_true, y_pred)), 6),
            "precision_macro": round(float(macro[0]), 6),
            "recall_macro": round(float(macro[1]), 6),
            "f1_macro": round(float(macro[2]), 6),
        },
        "per_class": {
            name: {
                "precision": round(float(per[0][i]), 6),
                "recall": round(float(per[1][i]), 6),
                "f1": round(float(per[2][i]), 6),
                "support": int(per[3][i]),
            }
            for i, name in enumerate(classes)
        },
    }


def score_own_sets(
    model: object, own: dict[str, tuple[np.ndarray, np.ndarray]], shift_average: bool = False
) -> dict[str, Any]:
    """Each own set's test split scored apart: accuracy, loss and how many pictures, so a
    gain on your digits and a loss on the dataset's both show in `dvc metrics diff`."""
    result = {}
    for name, (x, y) in own.items():
        probs = predict_probs(model, x, shift_average)
        result[name] = {
            "accuracy": round(float(np.mean(probs.argmax(1) == y.argmax(1))), 6),
            "loss": round(test_loss(y, probs), 6),
            "n": len(y),
        }
    return result


def write_outputs(
    metrics: dict[str, Any],
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    metrics_path: Path,
    predictions_path: Path,
    probs_path: Path,
) -> None:
    """Write the three outputs, each atomically, so a failed run leaves none half-written."""
    with atomic_output(metrics_path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    with atomic_output(predictions_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows(zip((classes[i] for i in y_true), (classes[i] for i in probs.argmax(1))))
    save_npz(probs_path, probs=probs.astype(np.float32))
