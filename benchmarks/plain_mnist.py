"""The seed model as one plain Keras script: the baseline that benchmarks/bench.py times.

Reads the four MNIST IDX gzip files from $DATA_MIRROR/mnist/, trains
784 -> Dense 128 relu -> Dense 128 relu -> Dropout 0.05 -> Dense 10 softmax
on all 60000 training images and prints the test accuracy.

    DATA_MIRROR=/path/to/data python benchmarks/plain_mnist.py --epochs 20

Any MLP trial of `make tune` too, as a plain script would train it (benchmarks/tune_bench.py
times a search against these): --hidden 512,512 --activation gelu --dropout 0.2
--optimizer rmsprop --batch-size 128 --schedule cosine --validation-split 0.1.
"""

import argparse
import gzip
import math
import os
import sys
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser(description="Train the seed MNIST model, plainly.")
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--learning-rate", type=float, default=1e-3)
parser.add_argument("--hidden", default="128,128", help="hidden layers' widths, comma-separated")
parser.add_argument("--activation", default="relu")
parser.add_argument("--dropout", type=float, default=0.05)
parser.add_argument("--optimizer", default="adam", help="a Keras optimizer's name: adam, nadam, rmsprop")
parser.add_argument("--batch-size", type=int, default=512)
parser.add_argument("--schedule", choices=("constant", "cosine"), default="constant")
parser.add_argument("--validation-split", type=float, default=0.0, help="held out and scored each epoch")
args = parser.parse_args()

if not os.environ.get("DATA_MIRROR"):
    sys.exit("plain_mnist: set DATA_MIRROR to a folder holding mnist/<the four IDX .gz files>.")
data = Path(os.environ["DATA_MIRROR"]) / "mnist"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402


def load_idx(name: str) -> np.ndarray:
    """An IDX file as a uint8 array: the 3rd byte of the magic is the dtype, the 4th ndim."""
    with gzip.open(data / name, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


x_train = load_idx("train-images-idx3-ubyte.gz").reshape(-1, 784).astype("float32") / 255
x_test = load_idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype("float32") / 255
y_train = keras.utils.to_categorical(load_idx("train-labels-idx1-ubyte.gz"), 10)
y_test = keras.utils.to_categorical(load_idx("t10k-labels-idx1-ubyte.gz"), 10)

model = keras.Sequential(
    [
        keras.Input(shape=(784,)),
        *(keras.layers.Dense(int(units), activation=args.activation) for units in args.hidden.split(",")),
        keras.layers.Dropout(args.dropout),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
optimizer = keras.optimizers.get(
    {"class_name": args.optimizer, "config": {"learning_rate": args.learning_rate}}
)
model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
callbacks = []
if args.schedule == "cosine":
    rate = args.learning_rate
    callbacks.append(
        keras.callbacks.LearningRateScheduler(
            lambda e, _: rate * 0.5 * (1 + math.cos(math.pi * e / args.epochs))
        )
    )
model.fit(
    x_train,
    y_train,
    batch_size=args.batch_size,
    epochs=args.epochs,
    validation_split=args.validation_split,
    callbacks=callbacks,
    verbose=2,
)

loss, accuracy = model.evaluate(x_test, y_test, batch_size=4096, verbose=0)
print(f"test accuracy: {accuracy:.4f}")
