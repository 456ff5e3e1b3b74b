"""The dataset in the form training reads: IDX parsed and checked, split, one-hot labels.

Each split is an .npz with `x` (uint8 pixels 0-255, N x 784), `y` (one-hot float32,
N x classes) and `classes` (names). Pixels stay bytes: a quarter of float32's size for DVC
to hash and cache, and the model scales them itself (its Rescaling layer), so it reads any
picture in the same 0-255 form. The validation split is a seeded, stratified slice of the
training set, so the test set never steers training.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mnist_classifier.catalogue import Dataset
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import atomic_output

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


def split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified train/validation indices: each class gives `fraction` of itself."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        val.append(members[: int(round(fraction * len(members)))])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    if not len(train_idx) or not len(val_idx):
        raise PipelineError(
            f"val_fraction {fraction} leaves an empty training or validation set "
            f"from {len(labels)} samples; choose a value that keeps both non-empty."
        )
    return train_idx, val_idx


def preprocess(dataset: Dataset, raw_dir: Path, out_dir: Path, val_fraction: float, seed: int) -> None:
    """Validate both raw splits, carve out validation, and write all three .npz at once."""
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
    with atomic_output(out_dir, directory=True) as tmp:
        for name, (images, labels) in splits.items():
            x, y = to_features(images, labels, n)
            np.savez(tmp / f"{name}.npz", x=x, y=y, classes=classes)
