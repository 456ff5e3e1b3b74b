"""The CNN as its params describe it: its layers, schedule and augmentation read back from
Keras on tiny data; augmentation in training only; identical weights from identical params;
predictions that do not depend on the batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnist_classifier import config, networks, training
from tests.support.params import default_params, make_train_params

# The old layout (3x3 `same` convolutions, pooled last), small: its maps never shrink to nothing.
SMALL = {"filters": [4, 6], "convs": 2, "kernel": 3, "padding": "same", "dense_units": 8, "augment": True}


def _xy(processed: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(processed / f"{split}.npz", allow_pickle=False) as d:
        return d["x"], d["y"]


def _layers(model: object) -> list[tuple[str, dict]]:
    return [(type(layer).__name__, layer.get_config()) for layer in model.layers]


def test_the_default_cnn_is_built_as_conf_says() -> None:
    """conf/model/cnn.yaml's network, read back from Keras: shifts, then two blocks of a 5x5
    `valid` convolution without bias, pooled before its batch norm and relu; dense 128, one
    dropout after it; 184,874 weights (the issue's count for this layout)."""
    params = config.train_params(default_params("cnn"))
    cnn = params.network
    model = networks.build_model(params, 784, 10)
    layers = _layers(model)
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(cnn.label_smoothing) == 0.1
    names = [name for name, _ in layers]
    assert names == [
        "Rescaling", "Reshape", "RandomTranslation",
        "Conv2D", "MaxPooling2D", "BatchNormalization", "Activation",
        "Conv2D", "MaxPooling2D", "BatchNormalization", "Activation",
        "Flatten", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    convs = [cfg for name, cfg in layers if name == "Conv2D"]
    assert [(c["filters"], c["kernel_size"], c["padding"], c["use_bias"]) for c in convs] == [
        (32, (5, 5), "valid", False),
        (64, (5, 5), "valid", False),
    ]
    assert [cfg["units"] for name, cfg in layers if name == "Dense"] == [128, 10]
    assert [cfg["rate"] for name, cfg in layers if name == "Dropout"] == [0.25]
    assert model.count_params() == 184_874
    assert config.map_sides(cnn) == [12, 4]  # 28 -> conv 24 -> pool 12 -> conv 8 -> pool 4


@pytest.mark.parametrize(
    "order, convs, block",
    [
        ("conv-pool-bn-relu", 1, ["Conv2D", "MaxPooling2D", "BatchNormalization", "Activation"]),
        ("conv-bn-relu-pool", 1, ["Conv2D", "BatchNormalization", "Activation", "MaxPooling2D"]),
        (
            "conv-pool-bn-relu",
            2,
            [
                "Conv2D",
                "BatchNormalization",
                "Activation",
                "Conv2D",
                "MaxPooling2D",
                "BatchNormalization",
                "Activation",
            ],
        ),
        (
            "conv-bn-relu-pool",
            2,
            [
                "Conv2D",
                "BatchNormalization",
                "Activation",
                "Conv2D",
                "BatchNormalization",
                "Activation",
                "MaxPooling2D",
            ],
        ),
    ],
)
def test_order_places_the_pool_in_each_block(order: str, convs: int, block: list[str]) -> None:
    model = networks.build_model(
        make_train_params("cnn", cnn={**SMALL, "convs": convs, "order": order}), 784, 10
    )
    names = [name for name, _ in _layers(model)]
    body = names[names.index("Conv2D") : names.index("Flatten")]
    assert body == block * 2  # two blocks (SMALL's filters)


def test_flat_dropout_adds_a_dropout_before_the_dense_layer() -> None:
    model = networks.build_model(make_train_params("cnn", cnn={**SMALL, "flat_dropout": 0.3}), 784, 10)
    names = [name for name, _ in _layers(model)]
    assert names[names.index("Flatten") :] == ["Flatten", "Dropout", "Dense", "Dropout", "Dense"]
    assert [cfg["rate"] for name, cfg in _layers(model) if name == "Dropout"] == [0.3, 0.25]


@pytest.mark.parametrize(
    "cnn, sides",
    [
        ({"filters": [8, 16], "kernel": 5, "padding": "valid", "convs": 1}, [12, 4]),
        ({"filters": [8, 16], "kernel": 3, "padding": "valid", "convs": 2}, [12, 4]),
        ({"filters": [8, 16, 32], "kernel": 3, "padding": "same", "convs": 2}, [14, 7, 3]),
        ({"filters": [8, 16, 32], "kernel": 3, "padding": "valid", "convs": 1}, [13, 5, 1]),
    ],
)
def test_the_map_sides_are_what_keras_builds(cnn: dict, sides: list[int]) -> None:
    params = make_train_params("cnn", cnn={**SMALL, **cnn})
    model = networks.build_model(params, 784, 10)
    pooled = [layer.output.shape[1] for layer in model.layers if type(layer).__name__ == "MaxPooling2D"]
    assert config.map_sides(params.network) == pooled == sides


def test_a_network_that_shrinks_the_picture_to_nothing_is_refused_in_one_line() -> None:
    from mnist_classifier.config import BadParamError

    with pytest.raises(BadParamError, match=r"at most 2 entries .* \(map sides \[12, 4, 0\]\)") as caught:
        make_train_params("cnn", cnn={"filters": [8, 16, 32], "kernel": 5, "padding": "valid"})
    assert caught.value.key == "cnn.filters" and "\n" not in str(caught.value)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_reaches_the_loss(smoothing: float) -> None:
    model = networks.build_model(
        make_train_params("cnn", cnn={**SMALL, "label_smoothing": smoothing}), 784, 10
    )
    if smoothing == 0.0:
        assert model.loss == "categorical_crossentropy"  # the seed's loss, as the MLP's
    else:
        assert type(model.loss).__name__ == "CategoricalCrossentropy"
        assert model.loss.get_config()["label_smoothing"] == pytest.approx(smoothing)


@pytest.mark.parametrize("convs", [1, 2, 3])
def test_convs_sets_the_convolutions_per_block(convs: int) -> None:
    model = networks.build_model(make_train_params("cnn", cnn={**SMALL, "convs": convs}), 784, 10)
    filters = [cfg["filters"] for name, cfg in _layers(model) if name == "Conv2D"]
    assert filters == [4] * convs + [6] * convs


def _rate(schedule: object, step: int) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_the_default_schedule_reaches_keras(processed: Path) -> None:
    """A one-epoch climb from 0 to the rate, then a half-cosine to 0, step by step, as Keras'
    own CosineDecay; the validation set scored only after the last epoch."""
    default = config.train_params(default_params("cnn"))
    assert (default.lr_schedule, default.learning_rate, default.warmup_epochs) == ("cosine", 0.003, 1)
    assert default.validation == "last_epoch"
    params = make_train_params("cnn", epochs=3, cnn=SMALL)
    trained = training.train(params, _xy(processed, "train"), _xy(processed, "val"))
    steps = -(-len(_xy(processed, "train")[0]) // params.batch_size)
    assert int(trained.optimizer.iterations) == 3 * steps
    read_back = trained.optimizer.get_config()["learning_rate"]
    assert read_back["class_name"] == "CosineDecay"
    assert {
        k: read_back["config"][k] for k in ("initial_learning_rate", "warmup_target", "warmup_steps")
    } == {
        "initial_learning_rate": 0.0,
        "warmup_target": 0.003,
        "warmup_steps": steps,
    }
    assert (read_back["config"]["decay_steps"], read_back["config"]["alpha"]) == (2 * steps, 0.0)
    schedule = trained.optimizer._learning_rate
    rates = [_rate(schedule, s) for s in (0, steps // 2, steps, 2 * steps, 3 * steps)]
    assert rates == pytest.approx([0.0, 0.003 * (steps // 2) / steps, 0.003, 0.0015, 0.0], abs=1e-9)
    history = trained.history.history
    assert len(history["accuracy"]) == 3 and len(history["val_accuracy"]) == 1


def test_augmentation_moves_the_digits_in_training_only(processed: Path) -> None:
    import keras

    training.make_deterministic(0)
    model = networks.build_model(make_train_params("cnn", cnn=SMALL), 784, 10)
    shift = next(layer for layer in model.layers if type(layer).__name__ == "RandomTranslation")
    x, _ = _xy(processed, "test")
    images = (x[:32].astype("float32") / 255).reshape(-1, 28, 28, 1)
    as_is = keras.ops.convert_to_numpy(shift(images, training=False))
    moved = keras.ops.convert_to_numpy(shift(images, training=True))
    np.testing.assert_array_equal(as_is, images)
    assert (moved != images).any(axis=(1, 2, 3)).mean() > 0.5  # most digits moved
    # Whole-pixel shifts with an empty border: no new grey levels, nothing blurred.
    assert set(np.unique(moved)) <= set(np.unique(images)) | {0.0}
    # Inference never augments: the same input gives the same answer, call after call.
    first = keras.ops.convert_to_numpy(model(x[:32], training=False))
    np.testing.assert_array_equal(first, keras.ops.convert_to_numpy(model(x[:32], training=False)))


def test_the_same_params_train_identical_weights_and_the_batch_size_changes_no_answer(
    processed: Path,
) -> None:
    """Augmentation draws random numbers too: the seed must fix them all. And inference
    reads each digit alone, whatever the batch (batch norm uses its running statistics)."""
    params = make_train_params("cnn", epochs=1, cnn={**SMALL, "convs": 1})
    runs = [training.train(params, _xy(processed, "train"), _xy(processed, "val")) for _ in range(2)]
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = _xy(processed, "test")[0][:48]
    probs = {size: runs[0].predict(x, batch_size=size, verbose=0) for size in (1, 7, 100)}
    for size in (7, 100):
        np.testing.assert_allclose(probs[size], probs[1], atol=1e-6)
        np.testing.assert_array_equal(probs[size].argmax(1), probs[1].argmax(1))
