"""Loading a trained model to predict with: shared by the evaluate stage and predict.py.

Whatever backend trained the model, Keras' NumPy backend runs it: a forward pass needs no
TensorFlow, whose import alone costs more than the evaluate stage does without it. Its
probabilities agree with TensorFlow's to about 1e-6 (the pipeline tests check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnist_classifier.backend import use_keras_backend
from mnist_classifier.errors import PipelineError, first_line
from mnist_classifier.imports import load

INFERENCE_BACKEND = "numpy"


def load_model(path: Path) -> Any:
    """Load a .keras file for inference, with safe_mode on so no embedded code can run."""
    use_keras_backend(INFERENCE_BACKEND)  # takes effect if Keras is not imported yet
    keras = load("keras")

    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - whatever Keras trips on is the file's problem
        why = _first_line(exc)
        if "safe_mode" in str(exc):  # Keras's advice (turn safe_mode off) is not ours to give
            raise PipelineError(
                f"{path} was refused: loading it would run code it carries "
                f"({why.split('. ')[0]}). Only models the train stage builds are loaded; "
                "rebuild it with `dvc repro train`."
            ) from None
        raise PipelineError(
            f"{path} is missing or not a valid Keras model ({why}); run `dvc repro train`."
        ) from None


def _first_line(exc: Exception, limit: int = 200) -> str:
    """An exception as one short line with its type: Keras' messages run to many lines of
    config dumps."""
    line = first_line(exc)
    text = f"{type(exc).__name__}: {line}" if line != type(exc).__name__ else line
    return text if len(text) <= limit else text[: limit - 3] + "..."
