"""Stage 5, plot: PNG figures a person would rather look at than read.

Writes to reports/figures/: samples.png (training images with labels), training.png
(loss and accuracy per epoch), confusion_matrix.png, predictions.png (random test images
titled `Predicted: p` over `True: t`) and misclassified.png (the most confidently wrong
test images). No TensorFlow here: it works from the evaluate stage's probabilities.
"""

from __future__ import annotations

from mnist_classifier.cli import run_program, stage_paths
from mnist_classifier.config import plot_params, read_params
from mnist_classifier.files import atomic_output, load_npz
from mnist_classifier.plots import make_figures


def main() -> None:
    args = stage_paths(__doc__, "data", "probs", "train_log", "out")
    params = plot_params(read_params())
    train = load_npz(args.data / "train.npz", ("x", "y"))
    test = load_npz(args.data / "test.npz", ("x", "y", "classes"))
    probs = load_npz(args.probs, ("probs",))["probs"]
    with atomic_output(args.out, directory=True) as tmp:
        make_figures(params, train, test, probs, args.train_log, tmp)


if __name__ == "__main__":
    run_program("plot", main)
