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
    """Slow tests first, otherwise in their order (a stable sort). Under `make test`'s
    `-n auto --dist worksteal` a worker that runs out takes queued tests from the other, but
    not the last two: with the minute-long tests at the end of the order, one worker ran them
    alone while the other sat idle. Started first, they end while short ones are left to share."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
