"""Fitting a network: seeded and deterministic, with each epoch logged for DVC.

The backend and its threads are chosen before Keras loads (mnist_classifier.backend); this
module only imports Keras inside its functions, so reading it costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mnist_classifier.config import TrainParams
from mnist_classifier.errors import raise_if_interrupted
from mnist_classifier.networks import build_model

if TYPE_CHECKING:
    import keras
    import numpy as np
    from dvclive import Live


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and the backend; TensorFlow also needs deterministic ops asked for.

    (JAX on CPU is deterministic as it is.) On JAX, TensorFlow is never imported: its import
    alone would cost more than a third of the MLP's training (docs/performance.md).
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
    else:
        # keras.utils.set_random_seed also seeds TensorFlow whenever it is installed, for tf.data
        # pipelines, which this project does not use; hidden, TensorFlow is skipped, not loaded.
        from mnist_classifier.imports import hidden

        with hidden(("tensorflow",)):
            keras.utils.set_random_seed(seed)


def epoch_logger(live: Live) -> keras.callbacks.Callback:
    """Log each epoch's metrics to dvclive as train/<metric> and eval/<metric>.

    dvclive's own Keras callback imports TensorFlow, which the JAX backend does not need.
    """
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            raise_if_interrupted()
            for name, value in (logs or {}).items():
                split, metric = ("eval", name[4:]) if name.startswith("val_") else ("train", name)
                live.log_metric(f"{split}/{metric}", float(value))
            live.next_step()

        def on_train_end(self, logs: dict | None = None) -> None:
            live.end()

    return EpochLogger()


def progress_writer(path: Path) -> keras.callbacks.Callback:
    """Append each epoch's validation accuracy to `path` as a JSON line, as it ends.

    `make tune` names the file (TRAIN_PROGRESS) and prunes hopeless trials from it while they
    train; it is outside the stage's outputs, so it changes nothing DVC caches.
    """
    import json

    import keras

    class ProgressWriter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if "val_accuracy" not in (logs or {}):  # `validation: last_epoch`: not scored yet
                return
            line = json.dumps({"epoch": epoch, "val_accuracy": float(logs["val_accuracy"])})
            with path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")

    return ProgressWriter()


def train(
    params: TrainParams,
    train_xy: tuple[np.ndarray, np.ndarray],
    val_xy: tuple[np.ndarray, np.ndarray],
    log_dir: Path | None = None,
    progress: Path | None = None,
    sample_weight: np.ndarray | None = None,
) -> keras.Model:
    """Fit a fresh model; with log_dir, dvclive records each epoch's metrics there, and with
    progress, each epoch's validation accuracy is appended there too (see progress_writer).
    sample_weight: each training row's weight in the loss (own sets mixed in by the `mix` param)."""
    make_deterministic(params.seed)
    steps_per_epoch = -(-len(train_xy[0]) // params.batch_size)
    model = build_model(params, train_xy[0].shape[1], train_xy[1].shape[1], steps_per_epoch)
    callbacks = []
    if log_dir is not None:
        from mnist_classifier.imports import load

        live = load("dvclive").Live(str(log_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        callbacks.append(epoch_logger(live))
    if progress is not None:
        callbacks.append(progress_writer(progress))
    model.fit(
        *train_xy,
        sample_weight=sample_weight,
        batch_size=params.batch_size,
        epochs=params.epochs,
        validation_data=val_xy,
        # last_epoch: the validation set is scored once, at the end (a few % of an epoch saved
        # each epoch), so the logs and `make tune`'s pruning see it only then.
        validation_freq=params.epochs if params.validation == "last_epoch" else 1,
        callbacks=callbacks,
        verbose=2,
    )
    return model
