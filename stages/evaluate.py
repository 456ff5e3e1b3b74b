"""Stage 4, evaluate: score the trained model on the held-out test set.

Writes the metrics file DVC tracks, one `actual,predicted` row per test image (DVC's
confusion-matrix plot) and the class probabilities the plot stage draws from.
"""

from __future__ import annotations

from mnist_classifier.cli import run_command, stage_paths
from mnist_classifier.evaluation import EVAL_BATCH_SIZE, score, test_loss, write_outputs
from mnist_classifier.files import load_npz
from mnist_classifier.inference import load_model


def main() -> None:
    args = stage_paths(__doc__, "model", "test", "metrics", "predictions", "probs")
    test = load_npz(args.test, ("x", "y", "classes"))
    model = load_model(args.model)
    probs = model.predict(test["x"], batch_size=EVAL_BATCH_SIZE, verbose=0)
    loss = test_loss(test["y"], probs)
    y_true = test["y"].argmax(axis=1)
    classes = [str(c) for c in test["classes"]]
    metrics = score(y_true, probs, loss, classes)
    write_outputs(metrics, y_true, probs, classes, args.metrics, args.predictions, args.probs)
    print(f"evaluate: test accuracy {metrics['test']['accuracy']:.4f}, loss {loss:.4f}")


if __name__ == "__main__":
    run_command("evaluate", main)
