"""The CNN as its params describe it: its layers, schedule and augmentation read back from
Keras on tiny data; augmentation in training only; identical weights from identical params;
predictions that do not depend on the batch size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mnist_classifier import config, networks, training
from tests.support.params import default_params, make_train_params

SMALL = {"filters": [4, 6], "convs": 2, "dense_units": 8, "augment": True}


def _xy(processed: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(processed / f"{split}.npz", allow_pickle=False) as d:
        return d["x"], d["y"]


def _layers(model: object) -> list[tuple[str, dict]]:
    return [(type(layer).__name__, layer.get_config()) for layer in model.layers]


def test_the_default_cnn_is_built_as_conf_says() -> None:
    params = config.train_params(default_params("cnn"))
    cnn = params.network
    model = networks.build_model(params, 784, 10)
    layers = _layers(model)
    smoothing = model.loss.get_config()["label_smoothing"] if cnn.label_smoothing else 0.0
    assert smoothing == pytest.approx(cnn.label_smoothing)
    names = [name for name, _ in layers]
    convs = [cfg for name, cfg in layers if name == "Conv2D"]
    assert [c["filters"] for c in convs] == [f for f in cnn.filters for _ in range(cnn.convs)]
    assert all(c["kernel_size"] == (3, 3) and c["padding"] == "same" for c in convs)
    # Every convolution is followed by batch norm and relu; every block ends in a 2x2 max-pool.
    for i, name in enumerate(names):
        if name == "Conv2D":
            assert names[i + 1 : i + 3] == ["BatchNormalization", "Activation"]
    assert names.count("MaxPooling2D") == len(cnn.filters)
    assert ("RandomTranslation" in names) == cnn.augment
    assert [cfg["units"] for name, cfg in layers if name == "Dense"] == [cnn.dense_units, 10]
    assert [cfg["rate"] for name, cfg in layers if name == "Dropout"] == [cnn.dropout] * 2


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


def test_the_default_schedule_reaches_keras(processed: Path) -> None:
    """A half-cosine from the default rate: after 2 of 4 epochs the optimizer runs at half of it."""
    start = config.train_params(default_params("cnn")).learning_rate
    params = make_train_params("cnn", epochs=4, cnn=SMALL)
    assert (params.lr_schedule, params.learning_rate) == ("cosine", start)
    schedule = networks.learning_rate_schedule(params)
    assert [schedule(e, 0.0) for e in range(4)] == pytest.approx(
        [start * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    )
    trained = training.train(
        make_train_params("cnn", epochs=3, cnn=SMALL), _xy(processed, "train"), _xy(processed, "val")
    )
    last = start * 0.5 * (1 + math.cos(math.pi * 2 / 3))  # what the third epoch ran at
    assert float(trained.optimizer.learning_rate) == pytest.approx(last)


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


@pytest.mark.parametrize("convs", [1, 2])
def test_the_same_params_train_identical_weights(processed: Path, convs: int) -> None:
    params = make_train_params("cnn", epochs=1, cnn={**SMALL, "convs": convs})
    runs = [training.train(params, _xy(processed, "train"), _xy(processed, "val")) for _ in range(2)]
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_predictions_do_not_depend_on_the_batch_size(processed: Path) -> None:
    model = training.train(
        make_train_params("cnn", epochs=1, cnn=SMALL), _xy(processed, "train"), _xy(processed, "val")
    )
    x, _ = _xy(processed, "test")
    probs = {size: model.predict(x, batch_size=size, verbose=0) for size in (1, 7, 100)}
    for size in (7, 100):
        np.testing.assert_allclose(probs[size], probs[1], atol=1e-6)
        np.testing.assert_array_equal(probs[size].argmax(1), probs[1].argmax(1))
