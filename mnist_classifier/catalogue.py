"""The dataset catalogue (datasets.yaml): names, files, checksums and mirrors, validated.

Datasets are configuration, not code, so adding one never means editing Python; this
module refuses entries that could fetch unverified bytes or write outside data/raw/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mnist_classifier.errors import PipelineError
from mnist_classifier.files import load_yaml

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class RemoteFile:
    name: str  # plain file name, the same on every mirror and in data/raw/
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    files: dict[str, RemoteFile]  # keyed by role, see ROLES


def _file(path: Path, dataset: str, role: str, entry: object) -> RemoteFile:
    where = f"{path}: {dataset}.files.{role}"
    if not isinstance(entry, dict):
        raise PipelineError(f"{where} must be a mapping with `name` and `sha256`.")
    name, sha = entry.get("name"), entry.get("sha256")
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise PipelineError(
            f"{where}.name is {name!r}; it must be a plain file name "
            "(letters, digits, '.', '_', '-'; no '/' or '..')."
        )
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha.lower()):
        raise PipelineError(
            f"{where}.sha256 is missing or not 64 hex digits; every file needs its "
            f"SHA-256 (`sha256sum {name}`) so that downloads can be verified."
        )
    return RemoteFile(name=name, sha256=sha.lower())


def load_dataset(path: Path, name: str) -> Dataset:
    """Return the catalogue entry `name`, or fail naming the datasets that exist."""
    catalogue = load_yaml(path)
    if not isinstance(catalogue, dict):
        raise PipelineError(f"{path} must map dataset names to entries.")
    if name not in catalogue:
        known = ", ".join(sorted(catalogue)) or "none"
        raise PipelineError(
            f"dataset {name!r} is not in {path}; known datasets: {known}. "
            f"Set `dataset` in params.yaml to one of them, or add an entry to {path}."
        )
    entry = catalogue[name]
    if not isinstance(entry, dict):
        raise PipelineError(f"{path}: {name} must be a mapping.")
    classes = entry.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise PipelineError(f"{path}: {name}.classes must list at least two class names.")
    mirrors = entry.get("mirrors") or []
    if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
        raise PipelineError(f"{path}: {name}.mirrors must be a list of base URLs.")
    files = entry.get("files")
    if not isinstance(files, dict) or set(files) != set(ROLES):
        raise PipelineError(f"{path}: {name}.files must have exactly {', '.join(ROLES)}.")
    return Dataset(
        name=name,
        classes=tuple(str(c) for c in classes),
        mirrors=tuple(mirrors),
        files={role: _file(path, name, role, files[role]) for role in ROLES},
    )
