"""The params: composed from conf/ into params.yaml, read and validated in one place.

`conf/config.yaml` holds the params every model shares, and `conf/model/<name>.yaml` each
model's own (its epochs, batch size, learning rate and network block). `dvc exp run`
composes them into params.yaml (DVC's Hydra support), so params.yaml holds only the chosen
model's keys, and the train stage depends on exactly those. `make params` (`compose_params`)
does the same composition for a plain `dvc repro`.

Each stage loads only the params it uses (the keys its `params:` list in dvc.yaml names),
and a typo such as `-S epochs=ten` fails here in milliseconds, before any heavy import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_classifier.errors import PipelineError
from mnist_classifier.files import atomic_output, load_yaml

PARAMS_FILE = Path("params.yaml")
CONF_DIR = Path("conf")

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
ACTIVATIONS = ("relu", "gelu", "silu", "elu", "selu", "tanh", "sigmoid")
BACKENDS = ("tensorflow", "jax")  # Keras 3 backends for training
SCHEDULES = ("constant", "cosine")  # cosine: a half-cosine decay to 0 over the epochs
MAX_CNN_BLOCKS = 3  # each block halves the 28x28 image: 14, 7, 3


@dataclass(frozen=True)
class MlpConfig:
    """The seed's dense network (`model: mlp`, the `mlp:` block)."""

    hidden_units: tuple[int, ...] = (128, 128)  # one Dense layer per entry
    activation: str = "relu"  # of every hidden layer
    dropout: float = 0.05  # before the softmax layer


@dataclass(frozen=True)
class CnnConfig:
    """A small convnet (`model: cnn`, the `cnn:` block)."""

    filters: tuple[int, ...] = (32, 64)  # one block per entry: convs x (conv3x3, BN, relu), max-pool
    convs: int = 2  # 3x3 convolutions in each block
    dense_units: int = 128  # the dense layer after the blocks
    dropout: float = 0.25  # before and after that dense layer
    augment: bool = True  # random whole-pixel shifts of up to 10%, while training only
    label_smoothing: float = 0.1  # share of each target spread over the other classes, in [0, 1)


NETWORKS: dict[str, type] = {"mlp": MlpConfig, "cnn": CnnConfig}  # the `model` param's choices


@dataclass(frozen=True)
class FetchParams:
    dataset: str


@dataclass(frozen=True)
class PreprocessParams:
    dataset: str
    seed: int
    val_fraction: float


@dataclass(frozen=True)
class TrainParams:
    """Everything the train stage reads: the chosen model's config and how to fit it."""

    backend: str
    seed: int
    epochs: int  # the chosen model's, as are the next four (conf/model/<model>.yaml)
    batch_size: int
    learning_rate: float  # the starting rate when the schedule decays it
    lr_schedule: str
    optimizer: str
    network: MlpConfig | CnnConfig = field(default_factory=MlpConfig)

    @property
    def model(self) -> str:
        """The `model` param's value: which network this is."""
        return next(name for name, cls in NETWORKS.items() if isinstance(self.network, cls))


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
                f"{PARAMS_FILE} lacks `{key}`; add it to conf/ and run `make params` "
                "(see docs/params.md for every key)."
            )
        node = node[part]
    return node


def _bad(key: str, value: Any, expected: str) -> PipelineError:
    return PipelineError(
        f"{PARAMS_FILE}: `{key}` is {value!r}; it must be {expected}. Fix conf/ or your `-S {key}=...`."
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


def mlp_config(raw: dict[str, Any]) -> MlpConfig:
    return MlpConfig(
        hidden_units=_units(raw, "mlp.hidden_units"),
        activation=_choice(raw, "mlp.activation", ACTIVATIONS),
        dropout=_float(raw, "mlp.dropout", 0.0, 1.0, closed_low=True),
    )


def cnn_config(raw: dict[str, Any]) -> CnnConfig:
    return CnnConfig(
        filters=_units(raw, "cnn.filters", longest=MAX_CNN_BLOCKS),
        convs=_int(raw, "cnn.convs"),
        dense_units=_int(raw, "cnn.dense_units"),
        dropout=_float(raw, "cnn.dropout", 0.0, 1.0, closed_low=True),
        augment=_bool(raw, "cnn.augment"),
        label_smoothing=_float(raw, "cnn.label_smoothing", 0.0, 1.0, closed_low=True),
    )


def train_params(raw: dict[str, Any]) -> TrainParams:
    model = _choice(raw, "model", tuple(NETWORKS))
    network = mlp_config(raw) if model == "mlp" else cnn_config(raw)
    return TrainParams(
        backend=_choice(raw, "backend", BACKENDS),
        seed=_int(raw, "seed", minimum=0),
        epochs=_int(raw, "epochs"),
        batch_size=_int(raw, "batch_size"),
        learning_rate=_float(raw, "learning_rate", 0.0, float("inf"), closed_low=False),
        lr_schedule=_choice(raw, "lr_schedule", SCHEDULES),
        optimizer=_choice(raw, "optimizer", OPTIMIZERS),
        network=network,
    )


def plot_params(raw: dict[str, Any]) -> PlotParams:
    return PlotParams(
        seed=_int(raw, "seed", minimum=0),
        samples=_int(raw, "plot.samples"),
        predictions=_int(raw, "plot.predictions"),
        misclassified=_int(raw, "plot.misclassified"),
    )


def _composed(overrides: list[str] | tuple[str, ...], conf_dir: Path) -> Any:
    """Hydra's composition of conf/ with the overrides, as an OmegaConf object."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise PipelineError(f"{conf_dir}/: {str(exc).splitlines()[0]}") from None
    return cfg


def compose(overrides: list[str] | tuple[str, ...] = (), conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The params `dvc exp run -S ...` would write, composed from conf/ by Hydra as DVC does.

    `compose(["model=cnn", "epochs=40"])` is the CNN's block with 40 epochs. An override
    Hydra refuses (a key the chosen model lacks, an unknown model) is one clear line.
    """
    from omegaconf import OmegaConf

    return OmegaConf.to_container(_composed(overrides, conf_dir))


def write_params(
    overrides: list[str] | tuple[str, ...] = (), conf_dir: Path = CONF_DIR, path: Path = PARAMS_FILE
) -> None:
    """Write params.yaml exactly as `dvc exp run` would (same composition, same YAML text),
    atomically, so a later `dvc exp run` leaves no stray diff."""
    from omegaconf import OmegaConf

    text = OmegaConf.to_yaml(_composed(overrides, conf_dir))
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def flat_keys(raw: dict[str, Any], prefix: str = "") -> list[str]:
    """The flattened keys of a params mapping (`plot.samples`), as DVC names its columns."""
    names = []
    for key, value in raw.items():
        if isinstance(value, dict):
            names += flat_keys(value, f"{prefix}{key}.")
        else:
            names.append(prefix + key)
    return names


def all_param_names(conf_dir: Path = CONF_DIR) -> list[str]:
    """Every param any model can have, each model's keys in conf/ order (for comparisons)."""
    names: list[str] = []
    for model in NETWORKS:
        names += [n for n in flat_keys(compose([f"model={model}"], conf_dir)) if n not in names]
    return names


def main() -> None:
    """`python -m mnist_classifier.config [OVERRIDE ...]` (`make params`): write params.yaml
    from conf/, as `dvc exp run` does, for a plain `dvc repro`."""
    import sys

    write_params(sys.argv[1:])
    print(f"params: wrote {PARAMS_FILE} from {CONF_DIR}/ ({' '.join(sys.argv[1:]) or 'defaults'})")


def cli() -> None:
    """The `mnist-params` console script."""
    from mnist_classifier.cli import run_command

    run_command("params", main)


if __name__ == "__main__":
    cli()
