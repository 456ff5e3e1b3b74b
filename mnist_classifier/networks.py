"""The two networks the `model` param chooses between, each built whole from its config.

Both take the 784 pixels as stored (bytes, 0-255) and scale them in their first layer, so a
saved model reads any picture in that same form (predict, `dvc import`) with nothing
outside it to get wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from mnist_classifier.config import CnnConfig, MlpConfig, TrainParams

if TYPE_CHECKING:
    import keras

# Batches per call into the backend: the same arithmetic in the same order (identical
# weights), with far less Python between steps (its speed-up: benchmarks/RESULTS.md).
STEPS_PER_EXECUTION = 32


def mlp(config: MlpConfig, n_inputs: int, n_classes: int) -> keras.Sequential:
    """The seed: 784 -> /255 -> Dense x N -> Dropout -> Dense softmax."""
    import keras

    model = keras.Sequential(name="mnist_mlp")
    model.add(keras.Input(shape=(n_inputs,)))
    model.add(keras.layers.Rescaling(1 / 255))
    for units in config.hidden_units:
        model.add(keras.layers.Dense(units, activation=config.activation))
    model.add(keras.layers.Dropout(config.dropout))
    model.add(keras.layers.Dense(n_classes, activation="softmax"))
    return model


def cnn(config: CnnConfig, n_inputs: int, n_classes: int) -> keras.Sequential:
    """Keras' `mnist_convnet` example with batch normalisation and light augmentation.

    Each `filters` entry is a block: `convs` times (3x3 convolution, batch norm, relu), then a
    2x2 max-pool. The augmentation (random shifts) is active in training only.
    """
    import keras
    from keras import layers

    side = math.isqrt(n_inputs)
    model = keras.Sequential(name="mnist_cnn")
    model.add(keras.Input(shape=(n_inputs,)))
    model.add(layers.Rescaling(1 / 255))
    model.add(layers.Reshape((side, side, 1)))
    if config.augment:
        # Whole-pixel shifts only: rotations and zooms resample the image again, which
        # blurred the digits and cost accuracy (benchmarks/RESULTS.md, the CNN rows).
        model.add(layers.RandomTranslation(0.1, 0.1, fill_mode="constant", interpolation="nearest"))
    for filters in config.filters:
        for _ in range(config.convs):
            model.add(layers.Conv2D(filters, 3, padding="same", use_bias=False))  # BN has the bias
            model.add(layers.BatchNormalization())
            model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D())
    model.add(layers.Flatten())
    model.add(layers.Dropout(config.dropout))
    model.add(layers.Dense(config.dense_units, activation="relu"))
    model.add(layers.Dropout(config.dropout))
    model.add(layers.Dense(n_classes, activation="softmax"))
    return model


BUILDERS: dict[type, Callable] = {MlpConfig: mlp, CnnConfig: cnn}  # config type -> network


def build_model(params: TrainParams, n_inputs: int, n_classes: int) -> keras.Model:
    """The network params.network describes, compiled as the seed is (cross-entropy, accuracy;
    the CNN's targets smoothed by its `label_smoothing`)."""
    import keras

    model = BUILDERS[type(params.network)](params.network, n_inputs, n_classes)
    optimizer = keras.optimizers.get(
        {"class_name": params.optimizer, "config": {"learning_rate": params.learning_rate}}
    )
    smoothing = params.network.label_smoothing if isinstance(params.network, CnnConfig) else 0.0
    model.compile(
        # Label smoothing keeps the CNN from chasing certainty on its last, often ambiguous, digits.
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
        if smoothing
        else "categorical_crossentropy",
        optimizer=optimizer,
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def learning_rate_schedule(params: TrainParams) -> Callable[[int, float], float] | None:
    """`lr_schedule: cosine` falls along a half cosine from `learning_rate` towards 0 by the
    last epoch: large early steps, then the settling that the last 0.1% needs. `constant`
    (the seed's) needs no schedule (None)."""
    if params.lr_schedule == "constant":
        return None
    start, epochs = params.learning_rate, params.epochs
    return lambda epoch, _lr: start * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
