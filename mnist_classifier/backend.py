"""Which Keras backend runs, and on how many threads: both must be set before Keras loads."""

from __future__ import annotations

import importlib.abc
import os
import sys
from types import ModuleType

from mnist_classifier.errors import PipelineError


def use_keras_backend(name: str) -> None:
    """Choose Keras' backend (the `backend` param) and hide TensorFlow's C++ start-up notes.

    Must run before the first `import keras`: Keras reads KERAS_BACKEND once, on import.
    """
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Keras imports these when they are installed, each in a try/except, for extras no stage uses
# (its scikit-learn wrappers, matplotlib image galleries, pandas DataFrame inputs): 2.1 s of a
# 6.5 s `import keras` on the 2-core test machine (2026-12-01), in every train and evaluate run.
OPTIONAL_EXTRAS = ("sklearn", "matplotlib", "pandas")


class _Hidden(importlib.abc.MetaPathFinder):
    """A finder that reports OPTIONAL_EXTRAS as not installed."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in OPTIONAL_EXTRAS:
            raise ModuleNotFoundError(f"{name} is hidden while Keras loads", name=name)


def load_keras() -> ModuleType:
    """`import keras`, the first time with its optional extras hidden (Keras then goes without
    them, as when they are not installed). Code that imports them afterwards gets them."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    hidden = _Hidden()
    sys.meta_path.insert(0, hidden)
    try:
        import keras
    finally:
        sys.meta_path.remove(hidden)
    return keras


def limit_threads(backend: str) -> None:
    """Use TRAIN_THREADS threads (default: every core), e.g. 1 each for `dvc queue start -j 2`.

    Must run before the backend is imported: TensorFlow and XLA size their thread pools once.
    The count is part of the arithmetic (threads split the sums), so runs to be compared to
    the last digit need the same TRAIN_THREADS; how many run side by side does not matter.
    """
    value = os.environ.get("TRAIN_THREADS", "")
    if not value:
        return
    if not (value.isascii() and value.isdigit()) or int(value) < 1:  # "²" is a digit to isdigit()
        raise PipelineError(
            f"TRAIN_THREADS is {value!r}; it must be a whole number >= 1, e.g. "
            "TRAIN_THREADS=1 dvc queue start -j 2."
        )
    if backend == "tensorflow":
        os.environ["TF_NUM_INTRAOP_THREADS"] = value
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    elif value == "1":  # XLA on CPU has no thread-count flag, only one or all
        flags = os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = flags.strip()
    else:
        print(
            f"train: note: TRAIN_THREADS={value} cannot be honoured on the JAX backend, whose CPU "
            "runtime uses one thread or every core; using every core (TRAIN_THREADS=1 for one).",
            file=sys.stderr,
        )
