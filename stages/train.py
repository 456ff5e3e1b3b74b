"""Stage 3, train: the network the `model` param names, trained seeded and deterministic.

Reads data/processed/{train,val}.npz, logs per-epoch loss and accuracy with dvclive
(reports/train/, shown by `dvc plots show`), and saves models/model.keras. Both outputs
appear only when training finishes. With TRAIN_PROGRESS=/path (set by `make tune`), each
epoch's validation accuracy is also appended there as it ends, for pruning; no output changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from mnist_classifier.backend import limit_threads, use_keras_backend
from mnist_classifier.cli import run_program, stage_paths
from mnist_classifier.config import read_params, train_params
from mnist_classifier.files import atomic_output, load_npz
from mnist_classifier.imports import load
from mnist_classifier.training import train


def main() -> None:
    args = stage_paths(__doc__, "data", "model", "log")
    params = train_params(read_params())  # fail fast, before TensorFlow loads
    limit_threads(params.backend)
    use_keras_backend(params.backend)
    load("keras")  # without its optional extras
    train_set = load_npz(args.data / "train.npz", ("x", "y"), optional=("w",))  # w: own sets mixed in
    val_set = load_npz(args.data / "val.npz", ("x", "y"))
    progress = Path(os.environ["TRAIN_PROGRESS"]) if os.environ.get("TRAIN_PROGRESS") else None
    with atomic_output(args.log, directory=True) as log_tmp, atomic_output(args.model) as model_tmp:
        model = train(
            params,
            (train_set["x"], train_set["y"]),
            (val_set["x"], val_set["y"]),
            log_tmp,
            progress,
            sample_weight=train_set.get("w"),
        )
        model.save(model_tmp)


if __name__ == "__main__":
    run_program("train", main)
