"""Read and validate params.yaml: the one place that knows its keys, types and ranges.

Each stage loads only the params it uses (the same keys its `params:` list in dvc.yaml
names), and a typo such as `-S epochs=ten` fails here in milliseconds, before any
heavy import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.common import PipelineError, load_yaml

PARAMS_FILE = Path("params.yaml")

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
ACTIVATIONS = ("relu", "gelu", "silu", "elu", "selu", "tanh", "sigmoid")
BACKENDS = ("tensorflow", "jax")  # Keras 3 backends for training
MODELS = ("mlp", "cnn")  # the seed's dense network, or a convolutional one (stages/model.py)
MAX_CNN_BLOCKS = 3  # each block halves the 28x28 image: 14, 7, 3


@dataclass(frozen=True)
class FetchParams:
    dataset: str


@dataclass(frozen=True)
class PreprocessParams:
    dataset: str
    seed: int
    val_fraction: float


@dataclass(frozen=True)
class CnnParams:
    filters: tuple[int, ...]
    dense_units: int
    dropout: float
    augment: bool
    epochs: int  # the CNN's own, as are these two: it learns best from more, smaller steps
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class TrainParams:
    backend: str
    model: str
    seed: int
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    hidden_units: tuple[int, ...]
    activation: str
    dropout: float
    cnn: CnnParams


@dataclass(frozen=True)
class PlotParams:
    seed: int
    samples: int
    predictions: int
    misclassified: int


def _get(raw: dict[str, Any], key: str) -> Any:
    """Look up a dotted key such as `plot.samples`."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise PipelineError(
                f"{PARAMS_FILE} lacks `{key}`; add it (see the README for every key)."
            )
        node = node[part]
    return node


def _bad(key: str, value: Any, expected: str) -> PipelineError:
    return PipelineError(
        f"{PARAMS_FILE}: `{key}` is {value!r}; it must be {expected}. "
        f"Fix params.yaml or your `-S {key}=...`."
    )


def _int(raw: dict[str, Any], key: str, minimum: int = 1) -> int:
    value = _get(raw, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(key, value, f"an integer >= {minimum}")
    return value


def _float(raw: dict[str, Any], key: str, low: float, high: float, closed_low: bool) -> float:
    """A number in (low, high), or [low, high) when closed_low."""
    value = _get(raw, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if closed_low else value > low) and value < high
    if not ok:
        bracket = "[" if closed_low else "("
        raise _bad(key, value, f"a number in {bracket}{low:g}, {high:g})")
    return float(value)


def _choice(raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _get(raw, key)
    if value not in allowed:
        raise _bad(key, value, f"one of {', '.join(allowed)}")
    return value


def _units(raw: dict[str, Any], key: str, longest: int | None = None) -> tuple[int, ...]:
    value = _get(raw, key)
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise _bad(key, value, "a non-empty list of positive integers, e.g. [128, 128]")
    if longest is not None and len(value) > longest:
        raise _bad(key, value, f"a list of at most {longest} positive integers, e.g. [32, 64]")
    return tuple(value)


def _bool(raw: dict[str, Any], key: str) -> bool:
    value = _get(raw, key)
    if not isinstance(value, bool):
        raise _bad(key, value, "true or false")
    return value


def _dataset(raw: dict[str, Any]) -> str:
    value = _get(raw, "dataset")
    if not isinstance(value, str) or not value:
        raise _bad("dataset", value, "a dataset name from datasets.yaml")
    return value


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The raw params mapping; each `*_params` function below then takes what its stage uses."""
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise PipelineError(f"{path} must be a mapping of keys to values.")
    return raw


def fetch_params(raw: dict[str, Any]) -> FetchParams:
    return FetchParams(dataset=_dataset(raw))


def preprocess_params(raw: dict[str, Any]) -> PreprocessParams:
    return PreprocessParams(
        dataset=_dataset(raw),
        seed=_int(raw, "seed", minimum=0),
        val_fraction=_float(raw, "val_fraction", 0.0, 1.0, closed_low=False),
    )


def train_params(raw: dict[str, Any]) -> TrainParams:
    return TrainParams(
        backend=_choice(raw, "backend", BACKENDS),
        model=_choice(raw, "model", MODELS),
        seed=_int(raw, "seed", minimum=0),
        epochs=_int(raw, "epochs"),
        batch_size=_int(raw, "batch_size"),
        learning_rate=_float(raw, "learning_rate", 0.0, float("inf"), closed_low=False),
        optimizer=_choice(raw, "optimizer", OPTIMIZERS),
        hidden_units=_units(raw, "hidden_units"),
        activation=_choice(raw, "activation", ACTIVATIONS),
        dropout=_float(raw, "dropout", 0.0, 1.0, closed_low=True),
        cnn=CnnParams(
            filters=_units(raw, "cnn.filters", longest=MAX_CNN_BLOCKS),
            dense_units=_int(raw, "cnn.dense_units"),
            dropout=_float(raw, "cnn.dropout", 0.0, 1.0, closed_low=True),
            augment=_bool(raw, "cnn.augment"),
            epochs=_int(raw, "cnn.epochs"),
            batch_size=_int(raw, "cnn.batch_size"),
            learning_rate=_float(raw, "cnn.learning_rate", 0.0, float("inf"), closed_low=False),
        ),
    )


def plot_params(raw: dict[str, Any]) -> PlotParams:
    return PlotParams(
        seed=_int(raw, "seed", minimum=0),
        samples=_int(raw, "plot.samples"),
        predictions=_int(raw, "plot.predictions"),
        misclassified=_int(raw, "plot.misclassified"),
    )
