"""Which Keras backend runs, and on how many threads: both must be set before Keras loads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mnist_classifier.errors import PipelineError


def use_keras_backend(name: str) -> None:
    """Choose Keras' backend (the `backend` param) and hide TensorFlow's C++ start-up notes.

    Must run before the first `import keras`: Keras reads KERAS_BACKEND once, on import.
    On JAX, compiled steps are also kept on disk (jax_compilation_cache).
    """
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if name == "jax":
        jax_compilation_cache()


def jax_compilation_cache() -> None:
    """Keep what XLA compiles for JAX in JAX's persistent cache, unless the user chose a folder.

    Compiling the MLP's steps (and its initialisers) is 5-7 s of each training on a 2-core
    CPU, paid again by every run that compiles the same steps: `-S epochs=30`, another seed.
    Cached, a later run loads them in a fraction of a second and computes the same numbers
    (the same executable; XLA_FLAGS, e.g. TRAIN_THREADS=1's, are part of the key). The folder is per user
    ($XDG_CACHE_HOME/mnist-classifier/jax, else ~/.cache/...), so every clone, queued
    experiment and trial shares it; JAX_COMPILATION_CACHE_DIR chooses another.
    """
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(base / "mnist-classifier" / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # the default skips < 1 s


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
