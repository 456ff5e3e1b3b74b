"""Stage 3, train: the network the `model` param names, trained seeded and deterministic.

Keras runs on the backend the `backend` param names (TensorFlow by default, or JAX).

Reads data/processed/{train,val}.npz, logs per-epoch loss and accuracy with dvclive
(reports/train/, shown by `dvc plots show`), and saves models/model.keras. Both
outputs appear only when training finishes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from stages.common import (PipelineError, atomic_output, load_npz, raise_if_interrupted, run_stage,
                           stage_paths, use_keras_backend)
from stages.model import batch_size, build_model, epochs, learning_rate_schedule
from stages.params import TrainParams, read_params, train_params

if TYPE_CHECKING:
    import keras
    import numpy as np
    from dvclive import Live


def limit_threads(backend: str) -> None:
    """Use TRAIN_THREADS threads (default: every core), e.g. 1 each for `dvc queue start -j 2`.

    Must run before the backend is imported: TensorFlow and XLA size their thread pools once.
    The count is part of the arithmetic (threads split the sums), so runs to be compared to
    the last digit need the same TRAIN_THREADS; how many run side by side does not matter.
    """
    value = os.environ.get("TRAIN_THREADS", "")
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise PipelineError(f"TRAIN_THREADS is {value!r}; it must be a whole number >= 1, e.g. "
                            "TRAIN_THREADS=1 dvc queue start -j 2.")
    if backend == "tensorflow":
        os.environ["TF_NUM_INTRAOP_THREADS"] = value
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    elif value == "1":  # XLA on CPU has no thread-count flag, only one or all
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and the backend; TensorFlow also needs deterministic ops asked for.

    (JAX on CPU is deterministic as it is.)
    """
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def epoch_logger(live: "Live") -> "keras.callbacks.Callback":
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


def train(
    params: TrainParams,
    train_xy: tuple["np.ndarray", "np.ndarray"],
    val_xy: tuple["np.ndarray", "np.ndarray"],
    log_dir: Path | None = None,
) -> "keras.Model":
    """Fit a fresh model; with log_dir, dvclive records each epoch's metrics there."""
    make_deterministic(params.seed)
    model = build_model(params, train_xy[0].shape[1], train_xy[1].shape[1])
    callbacks = []
    if schedule := learning_rate_schedule(params):
        import keras

        callbacks.append(keras.callbacks.LearningRateScheduler(schedule))
    if log_dir is not None:
        from dvclive import Live

        live = Live(str(log_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        callbacks.append(epoch_logger(live))
    model.fit(
        *train_xy,
        batch_size=batch_size(params),
        epochs=epochs(params),
        validation_data=val_xy,
        callbacks=callbacks,
        verbose=2,
    )
    return model


def main() -> None:
    args = stage_paths(__doc__, "data", "model", "log")
    params = train_params(read_params())  # fail fast, before TensorFlow loads
    limit_threads(params.backend)
    use_keras_backend(params.backend)
    train_set = load_npz(args.data / "train.npz", ("x", "y"))
    val_set = load_npz(args.data / "val.npz", ("x", "y"))
    with atomic_output(args.log, directory=True) as log_tmp, atomic_output(args.model) as model_tmp:
        model = train(params, (train_set["x"], train_set["y"]), (val_set["x"], val_set["y"]), log_tmp)
        model.save(model_tmp)


if __name__ == "__main__":
    run_stage("train", main)
