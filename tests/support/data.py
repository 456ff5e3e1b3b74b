"""Tiny synthetic datasets in MNIST's own form: gzip IDX files a model can learn, and their
catalogue entries.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import yaml

FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """Raw IDX: big-endian magic, one big-endian uint32 per dimension, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def synthetic_digits(n: int, seed: int, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class c lights a bar at row 2c+4 (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c + 4, 3:25] = 255
    return images, labels.astype(np.uint8)


def write_dataset(directory: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, str]:
    """Write the four gzip IDX files of a tiny dataset; return role -> SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_digits(n_train, seed)
    test_x, test_y = synthetic_digits(n_test, seed + 1)
    contents = {
        "train_images": idx_bytes(train_x, 0x803),
        "train_labels": idx_bytes(train_y, 0x801),
        "test_images": idx_bytes(test_x, 0x803),
        "test_labels": idx_bytes(test_y, 0x801),
    }
    shas = {}
    for role, raw in contents.items():
        data = gzip.compress(raw, mtime=0)
        (directory / FILE_NAMES[role]).write_bytes(data)
        shas[role] = hashlib.sha256(data).hexdigest()
    return shas


def catalogue_entry(shas: dict[str, str], mirrors: list[str] | None = None) -> dict:
    return {
        "classes": [str(i) for i in range(10)],
        "mirrors": mirrors or [],
        "files": {role: {"name": FILE_NAMES[role], "sha256": sha} for role, sha in shas.items()},
    }


def add_to_catalogue(catalogue: Path, name: str, entry: dict) -> None:
    data = yaml.safe_load(catalogue.read_text())
    data[name] = entry
    catalogue.write_text(yaml.safe_dump(data, sort_keys=False))
