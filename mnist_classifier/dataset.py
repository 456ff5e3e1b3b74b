"""The dataset in the form training reads: IDX parsed and checked, split, one-hot labels.

Each split is an .npz with `x` (uint8 pixels 0-255, N x 784), `y` (one-hot float32,
N x classes) and `classes` (names). Own sets named by the `mix` param (own_sets.py) join
the training split, which then also holds `w`, each row's weight in the loss; their test
splits go to own_test.npz (`names`, and `x_<name>`, `y_<name>` for each), so evaluate
scores each apart from the dataset's own test set. Pixels stay bytes: a quarter of
float32's size for DVC to hash and cache, and the model scales them itself (its Rescaling
layer), so it reads any picture in the same 0-255 form. The validation split is a seeded,
stratified slice of the training set, so the test set never steers training.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mnist_classifier.catalogue import Dataset, OwnSet
from mnist_classifier.config import Mix
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import atomic_output, write_npz

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801


def read_gzip(path: Path) -> bytes:
    """Decompress in memory: nothing is unpacked to disk outside data/raw/."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run the fetch stage (`dvc repro fetch`).") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise PipelineError(
            f"{path} is not a complete gzip file ({exc}); delete it and rerun `dvc repro fetch`."
        ) from None


def parse_idx(raw: bytes, magic: int, ndim: int, source: str) -> np.ndarray:
    """Decode an IDX array of unsigned bytes, checking magic, header and length."""
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise PipelineError(f"{source}: only {len(raw)} bytes, shorter than an IDX header.")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise PipelineError(
            f"{source}: magic number 0x{found:08x}, expected 0x{magic:08x} "
            f"(uint8, {ndim}-D); is this the right file?"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise PipelineError(
            f"{source}: header says {'x'.join(map(str, dims))} ({expected} bytes) "
            f"but the file has {len(raw)} bytes; it is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_split(images_gz: Path, labels_gz: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair and check they agree with each other and the catalogue."""
    images = parse_idx(read_gzip(images_gz), IMAGES_MAGIC, 3, images_gz.name)
    labels = parse_idx(read_gzip(labels_gz), LABELS_MAGIC, 1, labels_gz.name)
    if images.shape[1:] != (28, 28):
        raise PipelineError(
            f"{images_gz.name}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28."
        )
    if len(images) != len(labels):
        raise PipelineError(
            f"{images_gz.name} has {len(images)} images but {labels_gz.name} has "
            f"{len(labels)} labels; the files do not belong together."
        )
    if labels.size and labels.max() >= n_classes:
        raise PipelineError(
            f"{labels_gz.name}: label {labels.max()} is outside 0-{n_classes - 1} "
            f"(the catalogue lists {n_classes} classes)."
        )
    return images, labels


def to_features(images: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Flatten each image to 784 uint8 pixels and one-hot the labels (as the seed does)."""
    x = images.reshape(len(images), -1)
    y = np.eye(n_classes, dtype=np.float32)[labels]
    return x, y


def split_indices(
    labels: np.ndarray, fraction: float, seed: int, at_least_one: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified train/validation indices: each class gives `fraction` of itself
    (rounded). With at_least_one (an own set's test split), a set too small for any class to
    give one still gives one picture of its largest class (a handful of corrections)."""
    rng = np.random.default_rng(seed)
    val, largest = [], None
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        val.append(members[: int(round(fraction * len(members)))])
        if largest is None or len(members) > len(largest):
            largest = members
    val_idx = np.sort(np.concatenate(val))
    if at_least_one and not len(val_idx) and largest is not None and len(labels) > 1:
        val_idx = largest[:1]
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    if not len(train_idx) or not len(val_idx):
        raise PipelineError(
            f"val_fraction {fraction} leaves an empty training or validation set "
            f"from {len(labels)} samples; choose a value that keeps both non-empty."
        )
    return train_idx, val_idx


def preprocess(
    dataset: Dataset,
    raw_dir: Path,
    out_dir: Path,
    val_fraction: float,
    seed: int,
    own: tuple[OwnSet, ...] = (),
    mix: Mix | None = None,
) -> None:
    """Validate both raw splits and every own set, carve out validation, and write all four
    .npz at once."""
    files = {role: raw_dir / f.name for role, f in dataset.files.items()}
    n = len(dataset.classes)
    train_images, train_labels = load_split(files["train_images"], files["train_labels"], n)
    test_images, test_labels = load_split(files["test_images"], files["test_labels"], n)
    train_idx, val_idx = split_indices(train_labels, val_fraction, seed)
    classes = np.array(dataset.classes)
    splits = {
        "train": (train_images[train_idx], train_labels[train_idx]),
        "val": (train_images[val_idx], train_labels[val_idx]),
        "test": (test_images, test_labels),
    }
    mix = mix or Mix()
    features = {name: to_features(images, labels, n) for name, (images, labels) in splits.items()}
    weights, own_test = None, {"names": np.array([set_.name for set_ in own], dtype=str)}
    if own:
        from mnist_classifier.own_sets import read_own_set

        extra_x, extra_y = [features["train"][0]], [features["train"][1]]
        weights = [np.ones(len(extra_x[0]), dtype=np.float32)]

        def split(labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
            return split_indices(labels, fraction, seed, at_least_one=True)

        for set_ in own:
            train, test = read_own_set(set_, dataset.classes, split)
            print(f"preprocess: own set {set_.name}: {len(train)} to train on, {len(test)} to test with")
            own_test[f"x_{set_.name}"], own_test[f"y_{set_.name}"] = to_features(test.x, test.labels, n)
            if mix.weight > 0:
                x, y = to_features(train.x, train.labels, n)
                extra_x.append(x)
                extra_y.append(y)
                weights.append(np.full(len(x), mix.weight, dtype=np.float32))
        features["train"] = (np.concatenate(extra_x), np.concatenate(extra_y))
        weights = np.concatenate(weights) if mix.weight > 0 else None
    with atomic_output(out_dir, directory=True) as tmp:
        for name, (x, y) in features.items():
            extra = {"w": weights} if name == "train" and weights is not None else {}
            write_npz(tmp / f"{name}.npz", x=x, y=y, classes=classes, **extra)
        write_npz(tmp / "own_test.npz", classes=classes, **own_test)
