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

    Each `filters` entry is a block of `convs` convolutions (kernel x kernel, no bias: batch
    norm has one), each with batch norm and relu, and a 2x2 max-pool: after the last relu
    (`conv-bn-relu-pool`), or straight after the last convolution (`conv-pool-bn-relu`), so
    that batch norm and relu work on the pooled map, a quarter of the size. Max-pooling
    commutes with relu and, per channel, with batch norm's scaling whenever that is positive,
    so the order changes the arithmetic's cost far more than what the network can express.
    The augmentation (random shifts) is active in training only.
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
    pool_first = config.order == "conv-pool-bn-relu"
    for filters in config.filters:
        for i in range(config.convs):
            model.add(layers.Conv2D(filters, config.kernel, padding=config.padding, use_bias=False))
            if pool_first and i == config.convs - 1:
                model.add(layers.MaxPooling2D())
            model.add(layers.BatchNormalization())
            model.add(layers.Activation("relu"))
        if not pool_first:
            model.add(layers.MaxPooling2D())
    model.add(layers.Flatten())
    if config.flat_dropout:
        model.add(layers.Dropout(config.flat_dropout))
    model.add(layers.Dense(config.dense_units, activation="relu"))
    model.add(layers.Dropout(config.dropout))
    model.add(layers.Dense(n_classes, activation="softmax"))
    return model


BUILDERS: dict[type, Callable] = {MlpConfig: mlp, CnnConfig: cnn}  # config type -> network


def build_model(params: TrainParams, n_inputs: int, n_classes: int, steps_per_epoch: int = 1) -> keras.Model:
    """The network params.network describes, compiled as the seed is (cross-entropy, accuracy;
    the CNN's targets smoothed by its `label_smoothing`), with the rate `learning_rate` gives
    for `steps_per_epoch` batches an epoch."""
    import keras

    model = BUILDERS[type(params.network)](params.network, n_inputs, n_classes)
    optimizer = keras.optimizers.get(
        {"class_name": params.optimizer, "config": {"learning_rate": learning_rate(params, steps_per_epoch)}}
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


def learning_rate(
    params: TrainParams, steps_per_epoch: int
) -> float | keras.optimizers.schedules.CosineDecay:
    """The optimizer's rate, step by step, as Keras' CosineDecay.

    First a linear climb from 0 over `warmup_epochs` (at most all epochs but the last): large
    steps from random weights can throw batch norm's statistics off. Then `lr_schedule:
    cosine` falls along a half cosine to 0 by the last step (large early steps, then the
    settling that the last 0.1% needs); `constant` stays at `learning_rate` (alpha 1: no
    decay). The seed (constant, no warm-up) gets the plain number.
    """
    # The warm-up leaves the last epoch at least to the schedule: `-S epochs=1` trains at once.
    warmup_epochs = min(params.warmup_epochs, params.epochs - 1)
    if params.lr_schedule == "constant" and not warmup_epochs:
        return params.learning_rate
    import keras

    warmup = warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else params.learning_rate,
        decay_steps=(params.epochs - warmup_epochs) * steps_per_epoch,
        alpha=1.0 if params.lr_schedule == "constant" else 0.0,
        warmup_target=params.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
