"""The two networks the `model` param chooses between, built and compiled for training.

Both take the 784 pixels as stored (bytes, 0-255) and scale them in their first layer, so a
saved model reads any picture in that same form (predict.py, `dvc import`) with nothing
outside it to get wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from stages.params import CnnParams, TrainParams

if TYPE_CHECKING:
    import keras

# Batches per call into the backend: the same arithmetic in the same order (identical
# weights), with far less Python between steps; measured 25% faster per epoch on 2 CPU cores.
STEPS_PER_EXECUTION = 32


def mlp(params: TrainParams, n_inputs: int, n_classes: int) -> "keras.Sequential":
    """The seed: 784 -> /255 -> Dense x N -> Dropout -> Dense softmax."""
    import keras

    model = keras.Sequential(name="mnist_mlp")
    model.add(keras.Input(shape=(n_inputs,)))
    model.add(keras.layers.Rescaling(1 / 255))
    for units in params.hidden_units:
        model.add(keras.layers.Dense(units, activation=params.activation))
    model.add(keras.layers.Dropout(params.dropout))
    model.add(keras.layers.Dense(n_classes, activation="softmax"))
    return model


def cnn(params: CnnParams, n_inputs: int, n_classes: int) -> "keras.Sequential":
    """Keras' `mnist_convnet` example with batch normalisation and light augmentation.

    Each `filters` entry is a block: 3x3 convolution, batch norm, relu, 2x2 max-pool. The
    augmentation (random shifts) is active in training only.
    """
    import keras
    from keras import layers

    side = math.isqrt(n_inputs)
    model = keras.Sequential(name="mnist_cnn")
    model.add(keras.Input(shape=(n_inputs,)))
    model.add(layers.Rescaling(1 / 255))
    model.add(layers.Reshape((side, side, 1)))
    if params.augment:
        # Shifts of up to 10% (2.8 px), whole pixels: rotations and zooms, each resampling
        # the image again, blurred the digits and cost 0.8 points of accuracy in 20 epochs.
        model.add(layers.RandomTranslation(0.1, 0.1, fill_mode="constant", interpolation="nearest"))
    for filters in params.filters:
        model.add(layers.Conv2D(filters, 3, padding="same", use_bias=False))  # BN has the bias
        model.add(layers.BatchNormalization())
        model.add(layers.Activation("relu"))
        model.add(layers.MaxPooling2D())
    model.add(layers.Flatten())
    model.add(layers.Dropout(params.dropout))
    model.add(layers.Dense(params.dense_units, activation="relu"))
    model.add(layers.Dropout(params.dropout))
    model.add(layers.Dense(n_classes, activation="softmax"))
    return model


def build_model(params: TrainParams, n_inputs: int, n_classes: int) -> "keras.Model":
    """The network `params.model` names, compiled as the seed is (cross-entropy, accuracy)."""
    import keras

    model = (mlp(params, n_inputs, n_classes) if params.model == "mlp"
             else cnn(params.cnn, n_inputs, n_classes))
    optimizer = keras.optimizers.get(
        {"class_name": params.optimizer, "config": {"learning_rate": learning_rate(params)}}
    )
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"],
                  steps_per_execution=STEPS_PER_EXECUTION)
    return model


def epochs(params: TrainParams) -> int:
    """Each model's own number of epochs: `epochs` for the MLP, `cnn.epochs` for the CNN."""
    return params.epochs if params.model == "mlp" else params.cnn.epochs


def batch_size(params: TrainParams) -> int:
    """Each model's own batch size, as epochs() picks its epochs."""
    return params.batch_size if params.model == "mlp" else params.cnn.batch_size


def learning_rate(params: TrainParams) -> float:
    """Each model's own (initial) learning rate, as batch_size() picks its batch size."""
    return params.learning_rate if params.model == "mlp" else params.cnn.learning_rate


def learning_rate_schedule(params: TrainParams) -> Callable[[int, float], float] | None:
    """The CNN's learning rate falls along a half cosine, from `cnn.learning_rate` towards 0
    by the last epoch: large early steps, then the settling that the last 0.1% needs. The
    MLP keeps the seed's constant rate (None)."""
    if params.model != "cnn":
        return None
    start = params.cnn.learning_rate
    return lambda epoch, _lr: start * 0.5 * (1 + math.cos(math.pi * epoch / params.cnn.epochs))
