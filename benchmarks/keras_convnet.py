"""The peer: Keras' own `mnist_convnet` example, as published, as one plain script.

https://keras.io/examples/vision/mnist_convnet/ : 32 and 64 3x3 convolutions with max-pooling,
dropout 0.5, a softmax layer (34,826 parameters), Adam, batch 128, 15 epochs, 10% of the
training set held out for validation; its page reports a test accuracy of about 0.992.
Only the data loading differs: the four IDX files from $DATA_MIRROR/<dataset>/ (the project's
offline copy) instead of `keras.datasets.mnist.load_data()`, which downloads them.

    DATA_MIRROR=/path/to/data python benchmarks/keras_convnet.py [--epochs 15] [--dataset mnist]
"""

import argparse
import gzip
import os
import sys
from pathlib import Path

import numpy as np

parser = argparse.ArgumentParser(description="Keras' mnist_convnet example, plainly.")
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--dataset", default="mnist", help="a folder of $DATA_MIRROR with the 4 IDX files")
args = parser.parse_args()
if not os.environ.get("DATA_MIRROR"):
    sys.exit("keras_convnet: set DATA_MIRROR to a folder holding mnist/<the four IDX .gz files>.")
data = Path(os.environ["DATA_MIRROR"]) / args.dataset

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"  # the example as published; not whatever is inherited
import keras  # noqa: E402
from keras import layers  # noqa: E402


def load_idx(name: str) -> np.ndarray:
    with gzip.open(data / name, "rb") as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


# The example, from here on.
num_classes = 10
input_shape = (28, 28, 1)
x_train = np.expand_dims(load_idx("train-images-idx3-ubyte.gz").astype("float32") / 255, -1)
x_test = np.expand_dims(load_idx("t10k-images-idx3-ubyte.gz").astype("float32") / 255, -1)
y_train = keras.utils.to_categorical(load_idx("train-labels-idx1-ubyte.gz"), num_classes)
y_test = keras.utils.to_categorical(load_idx("t10k-labels-idx1-ubyte.gz"), num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)
batch_size = 128
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=batch_size, epochs=args.epochs, validation_split=0.1, verbose=2)
score = model.evaluate(x_test, y_test, verbose=0)
print(f"parameters: {model.count_params()}")
print(f"test accuracy: {score[1]:.4f}")
