"""Fixtures shared by the unit and semantic tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mnist_classifier import catalogue
from mnist_classifier.dataset import preprocess
from tests.helpers import catalogue_entry, write_dataset


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
