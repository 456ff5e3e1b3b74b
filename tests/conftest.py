"""Fixtures shared by the test modules."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest
import yaml

from mnist_classifier import catalogue
from mnist_classifier.dataset import preprocess
from tests.support.data import catalogue_entry, write_dataset
from tests.support.projects import build_baseline


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, catalogue.Dataset]:
    """A tiny synthetic dataset's four IDX files and its catalogue entry."""
    root = tmp_path_factory.mktemp("tiny")
    shas = write_dataset(root / "raw", n_train=500, n_test=100)
    path = root / "datasets.yaml"
    path.write_text(yaml.safe_dump({"tiny": catalogue_entry(shas)}))
    return root / "raw", catalogue.load_dataset(path, "tiny")


@pytest.fixture(scope="session")
def processed(tiny_raw: tuple[Path, catalogue.Dataset]) -> Path:
    """The tiny dataset run through the real preprocess(): processed/{train,val,test}.npz."""
    raw, dataset = tiny_raw
    out = raw.parent / "processed"
    preprocess(dataset, raw, out, val_fraction=0.2, seed=0)
    return out


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MLP trained on printed digits in MNIST's form, saved as the train stage does:
    a model the picture tests (predict's, and pictures as people write them) read with."""
    import numpy as np

    from mnist_classifier import training
    from tests.support.params import make_train_params
    from tests.support.pictures import mnist_form

    x, labels = mnist_form(1000, seed=0)
    y = np.eye(10, dtype=np.float32)[labels]
    p = make_train_params(epochs=30, batch_size=32)
    model = training.train(p, (x.reshape(-1, 784), y), (x[:100].reshape(-1, 784), y[:100]))
    path = tmp_path_factory.mktemp("model") / "printed.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with its baseline run committed (build_baseline()), which the pipeline
    modules start from by taking a copy (helpers.baseline_copy()): built once per session.
    Under pytest-xdist the workers share one: whichever asks first builds it, under a lock in
    the session's temporary root, and the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base  # one per session
    root = shared / "baseline"
    with open(shared / "baseline.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "built").exists():  # absent, or a build that failed midway
            shutil.rmtree(root, ignore_errors=True)
            build_baseline(root)
            (root / "built").touch()
    return root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, dealt in turn to each pytest-xdist worker's share, otherwise in their
    order. `make test` runs `-n auto --dist worksteal`, which hands worker i the i-th contiguous
    share of this list and lets a worker that runs out take the end of another's queue. Sorted
    slow-first alone, the first worker's share held every minute-long test and the last of them
    ran alone at the end (94 s of the other core idle, 2026-12-01). Dealt, each share starts
    with its half of the slow tests and ends with short ones, which are what gets shared."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    slow = [item for item in items if item.get_closest_marker("slow")]
    fast = [item for item in items if not item.get_closest_marker("slow")]
    sizes, left = [], len(items)
    for i in range(workers):  # the shares xdist's worksteal scheduler cuts, in its order
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    ordered = []
    for i, size in enumerate(sizes):
        share = slow[i::workers]
        ordered += share + fast[: max(0, size - len(share))]
        fast = fast[max(0, size - len(share)) :]
    items[:] = ordered + fast
