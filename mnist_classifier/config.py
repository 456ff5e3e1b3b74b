"""The params as the stages read them: params.yaml, validated, one dataclass per stage.

Each stage loads only the params it uses (the keys its `params:` list in dvc.yaml names),
and a typo such as `-S epochs=ten` fails here in milliseconds, before any heavy import.
Every stage imports this module, so it is a dep of each of them: what only
the tools use (composing conf/ into params.yaml, `make keep`, `make compare`'s param
names) lives in mnist_classifier.composition, which no stage imports, so editing it
reruns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_classifier.errors import PipelineError
from mnist_classifier.files import load_yaml

PARAMS_FILE = Path("params.yaml")

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
ACTIVATIONS = ("relu", "gelu", "silu", "elu", "selu", "tanh", "sigmoid")
BACKENDS = ("tensorflow", "jax")  # Keras 3 backends for training
SCHEDULES = ("constant", "cosine")  # cosine: a half-cosine decay to 0 over the epochs
VALIDATIONS = ("every_epoch", "last_epoch")  # when the validation set is scored while training
MAX_CNN_BLOCKS = 3  # each block halves the 28x28 image: 14, 7, 3
PADDINGS = ("same", "valid")  # valid: no border, so a 5x5 convolution shrinks the map by 4
# A block's order. conv-bn-relu-pool: `convs` x (conv, BN, relu), then the 2x2 pool (the old
# default); conv-pool-bn-relu: the pool moves before the last conv's BN and relu, which then
# work on a map 4x smaller (the block order of the fast CIFAR-10 scripts airbench, hlb-CIFAR10).
ORDERS = ("conv-pool-bn-relu", "conv-bn-relu-pool")


@dataclass(frozen=True)
class MlpConfig:
    """The seed's dense network (`model: mlp`, the `mlp:` block)."""

    hidden_units: tuple[int, ...] = (128, 128)  # one Dense layer per entry
    activation: str = "relu"  # of every hidden layer
    dropout: float = 0.05  # before the softmax layer


@dataclass(frozen=True)
class CnnConfig:
    """A small convnet (`model: cnn`, the `cnn:` block); the defaults are conf/model/cnn.yaml's."""

    filters: tuple[int, ...] = (32, 64)  # one block per entry: `convs` convolutions and a 2x2 max-pool
    convs: int = 1  # convolutions in each block
    kernel: int = 5  # each convolution's side
    padding: str = "valid"  # one of PADDINGS
    order: str = "conv-pool-bn-relu"  # one of ORDERS
    dense_units: int = 128  # the dense layer after the blocks
    flat_dropout: float = 0.0  # on the flattened maps, before that dense layer
    dropout: float = 0.25  # after that dense layer
    augment: bool = True  # random whole-pixel shifts of up to 10%, while training only
    label_smoothing: float = 0.1  # share of each target spread over the other classes, in [0, 1)


NETWORKS: dict[str, type] = {"mlp": MlpConfig, "cnn": CnnConfig}  # the `model` param's choices


@dataclass(frozen=True)
class FetchParams:
    dataset: str


@dataclass(frozen=True)
class Mix:
    """Own sets (datasets.yaml's `own:` section) added to the dataset's training set, each
    also scored on its own test split (the `mix:` block)."""

    sets: tuple[str, ...] = ()
    weight: float = 1.0  # each own training picture's weight in the loss; 0: scored, never trained on


@dataclass(frozen=True)
class PreprocessParams:
    dataset: str
    seed: int
    val_fraction: float
    mix: Mix = field(default_factory=Mix)


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
    warmup_epochs: int = 0  # the rate climbs from 0 to learning_rate over these (at most epochs - 1)
    validation: str = "every_epoch"  # one of VALIDATIONS

    @property
    def model(self) -> str:
        """The `model` param's value: which network this is."""
        return next(name for name, cls in NETWORKS.items() if isinstance(self.network, cls))


@dataclass(frozen=True)
class EvaluateParams:
    shift_average: bool = False  # each answer the mean over the digit and its four 1-pixel shifts


@dataclass(frozen=True)
class PlotParams:
    seed: int
    samples: int
    predictions: int
    misclassified: int


def lookup(tree: dict[str, Any], key: str) -> Any:
    """The value at a dotted key as `-S` names it (`plot.samples`); KeyError naming the key."""
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _get(raw: dict[str, Any], key: str) -> Any:
    try:
        return lookup(raw, key)
    except KeyError:
        raise PipelineError(
            f"{PARAMS_FILE} lacks `{key}`; add it to conf/ and run `make params` "
            "(see docs/params.md for every key)."
        ) from None


class BadParamError(PipelineError):
    """A param's value the stages refuse; `expected` says what it must be (make tune's space
    check quotes it for a bound the stage would refuse)."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        super().__init__(
            f"{PARAMS_FILE}: `{key}` is {value!r}; it must be {expected}. Fix conf/ or your `-S {key}=...`."
        )
        self.key, self.value, self.expected = key, value, expected


def _bad(key: str, value: Any, expected: str) -> BadParamError:
    return BadParamError(key, value, expected)


MAX_SEED = 2**32 - 1  # Keras, TensorFlow and NumPy seeds stop here


def _int(raw: dict[str, Any], key: str, minimum: int = 1, maximum: int | None = None) -> int:
    value = _get(raw, key)
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        expected = (
            f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
        )
        raise _bad(key, value, expected)
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
    if not lock_keeps(value):
        raise PipelineError(
            f"{PARAMS_FILE}: `{key}` is {value!r}, more digits than DVC's dvc.lock keeps (it would "
            f"store another number, and `dvc status` would call this stage changed after every run); "
            f"write at most {LOCK_DIGITS} significant digits, e.g. `-S {key}={short_float(value)}`."
        )
    return float(value)


LOCK_DIGITS = 6  # significant digits that always survive dvc.lock; `make tune` cuts its floats to these


def short_float(value: float, digits: int = LOCK_DIGITS) -> float:
    """`value` cut to `digits` significant digits (6.466422717414563e-05 -> 6.46642e-05)."""
    return float(f"{value:.{digits}g}")


def lock_keeps(value: float) -> bool:
    """Whether DVC writes `value` into dvc.lock unchanged.

    DVC reads params.yaml with ruamel's round-trip loader and writes dvc.lock with its dumper,
    which cuts a long mantissa in exponent form: `6.466422717414563e-05` comes back as
    `...561e-05` (334 of 2,000 log-uniform draws in [1e-5, 3e-4], ruamel 0.19.1). The check is
    that round trip itself, so it refuses nothing DVC keeps; a value of at most LOCK_DIGITS
    significant digits (nearly every hand-typed one) is kept without asking ruamel.
    """
    if isinstance(value, int) or value == short_float(value):
        return True
    import io

    from ruamel.yaml import YAML

    text = io.StringIO()
    YAML().dump(YAML().load(f"v: {value!r}\n"), text)  # read as DVC reads params, written as dvc.lock
    return YAML(typ="safe").load(text.getvalue())["v"] == value


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


def _names(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = _get(raw, key)
    if (
        not isinstance(value, list)
        or any(not isinstance(v, str) or not v for v in value)
        or len(set(value)) != len(value)
    ):
        raise _bad(
            key, value, "a list of distinct own set names from datasets.yaml's `own:`, e.g. [uci_digits]"
        )
    return tuple(value)


def preprocess_params(raw: dict[str, Any]) -> PreprocessParams:
    return PreprocessParams(
        dataset=_dataset(raw),
        seed=_int(raw, "seed", minimum=0, maximum=MAX_SEED),
        val_fraction=_float(raw, "val_fraction", 0.0, 1.0, closed_low=False),
        mix=Mix(sets=_names(raw, "mix.sets"), weight=_float(raw, "mix.weight", 0.0, 1e6, closed_low=True)),
    )


def mlp_config(raw: dict[str, Any]) -> MlpConfig:
    return MlpConfig(
        hidden_units=_units(raw, "mlp.hidden_units"),
        activation=_choice(raw, "mlp.activation", ACTIVATIONS),
        dropout=_float(raw, "mlp.dropout", 0.0, 1.0, closed_low=True),
    )


def map_sides(config: CnnConfig, side: int = 28) -> list[int]:
    """The feature map's side after each block: a `valid` convolution takes kernel - 1 off,
    the pool halves it (rounding down). A side below 1 is a network that cannot be built."""
    sides = []
    for _ in config.filters:
        for _ in range(config.convs):
            side -= (config.kernel - 1) if config.padding == "valid" else 0
        side //= 2
        sides.append(side)
        if side < 1:
            break
    return sides


def cnn_config(raw: dict[str, Any]) -> CnnConfig:
    config = CnnConfig(
        filters=_units(raw, "cnn.filters", longest=MAX_CNN_BLOCKS),
        convs=_int(raw, "cnn.convs"),
        kernel=_int(raw, "cnn.kernel", maximum=27),
        padding=_choice(raw, "cnn.padding", PADDINGS),
        order=_choice(raw, "cnn.order", ORDERS),
        dense_units=_int(raw, "cnn.dense_units"),
        flat_dropout=_float(raw, "cnn.flat_dropout", 0.0, 1.0, closed_low=True),
        dropout=_float(raw, "cnn.dropout", 0.0, 1.0, closed_low=True),
        augment=_bool(raw, "cnn.augment"),
        label_smoothing=_float(raw, "cnn.label_smoothing", 0.0, 1.0, closed_low=True),
    )
    if (sides := map_sides(config))[-1] < 1:
        k = config.kernel
        raise _bad(
            "cnn.filters",
            list(config.filters),
            f"at most {len(sides) - 1} entries with {config.convs} `{config.padding}` {k}x{k} convolutions "
            f"a block, or the 28x28 picture shrinks to nothing (map sides {sides}); or use a smaller "
            "`cnn.kernel` or `cnn.padding=same`",
        )
    return config


def train_params(raw: dict[str, Any]) -> TrainParams:
    model = _choice(raw, "model", tuple(NETWORKS))
    network = mlp_config(raw) if model == "mlp" else cnn_config(raw)
    return TrainParams(
        backend=_choice(raw, "backend", BACKENDS),
        seed=_int(raw, "seed", minimum=0, maximum=MAX_SEED),
        epochs=_int(raw, "epochs"),
        batch_size=_int(raw, "batch_size"),
        learning_rate=_float(raw, "learning_rate", 0.0, float("inf"), closed_low=False),
        lr_schedule=_choice(raw, "lr_schedule", SCHEDULES),
        optimizer=_choice(raw, "optimizer", OPTIMIZERS),
        network=network,
        warmup_epochs=_int(raw, "warmup_epochs", minimum=0),
        validation=_choice(raw, "validation", VALIDATIONS),
    )


def evaluate_params(raw: dict[str, Any]) -> EvaluateParams:
    return EvaluateParams(shift_average=_bool(raw, "evaluate.shift_average"))


def plot_params(raw: dict[str, Any]) -> PlotParams:
    return PlotParams(
        seed=_int(raw, "seed", minimum=0, maximum=MAX_SEED),
        samples=_int(raw, "plot.samples"),
        predictions=_int(raw, "plot.predictions"),
        misclassified=_int(raw, "plot.misclassified"),
    )
