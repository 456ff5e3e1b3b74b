"""Stage 4, evaluate: score the trained model on the held-out test set, and on each own
set's test split (own_test.npz) apart, so `dvc metrics diff` shows them side by side.
With `evaluate.shift_average`, each answer is the mean over the digit and its four 1-pixel
shifts (five passes over the test set instead of one).

Writes the metrics file DVC tracks, one `actual,predicted` row per test image (DVC's
confusion-matrix plot) and the class probabilities the plot stage draws from.
"""

from __future__ import annotations

from mnist_classifier.cli import run_program, stage_paths
from mnist_classifier.config import evaluate_params, read_params
from mnist_classifier.evaluation import predict_probs, score, score_own_sets, test_loss, write_outputs
from mnist_classifier.files import load_npz, load_own_tests
from mnist_classifier.inference import load_model


def main() -> None:
    args = stage_paths(__doc__, "model", "test", "own_test", "metrics", "predictions", "probs")
    params = evaluate_params(read_params())
    test = load_npz(args.test, ("x", "y", "classes"))
    own = load_own_tests(args.own_test)
    model = load_model(args.model)
    probs = predict_probs(model, test["x"], params.shift_average)
    loss = test_loss(test["y"], probs)
    y_true = test["y"].argmax(axis=1)
    classes = [str(c) for c in test["classes"]]
    metrics = score(y_true, probs, loss, classes)
    if own:
        metrics["own"] = score_own_sets(model, own, params.shift_average)
    write_outputs(metrics, y_true, probs, classes, args.metrics, args.predictions, args.probs)
    print(f"evaluate: test accuracy {metrics['test']['accuracy']:.4f}, loss {loss:.4f}")
    for name, result in metrics.get("own", {}).items():
        print(f"evaluate: own set {name}: accuracy {result['accuracy']:.4f} on {result['n']} pictures")


if __name__ == "__main__":
    run_program("evaluate", main)
