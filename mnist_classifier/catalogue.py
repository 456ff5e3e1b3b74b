"""The dataset catalogue (datasets.yaml): names, files, checksums and mirrors, validated.

Datasets are configuration, not code, so adding one never means editing Python; this
module refuses entries that could fetch unverified bytes or write outside data/raw/.
Your own sets (a folder of labelled pictures, or a CSV) are entries of its `own:` section:
they live under data/own/, tracked by `dvc add`, and the `mix` param adds them to training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mnist_classifier.errors import PipelineError
from mnist_classifier.files import load_yaml

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
OWN = "own"  # the catalogue's section of own sets (not a dataset name)
OWN_KINDS = ("folder", "csv")
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


@dataclass(frozen=True)
class OwnSet:
    """An own set: `folder` (<path>/<label>/*.png|jpg, or <path>/{train,test}/<label>/...)
    or `csv` (Kaggle's digit layout: a `label,pixel0..pixel783` header, one row a picture)."""

    name: str
    kind: str
    path: Path
    test_fraction: float  # held out for its own score, when the set has no train/ and test/


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
    catalogue = _catalogue(path)
    if name == OWN:
        raise PipelineError(
            f"`{OWN}` in {path} holds your own sets, which the `mix` param adds to a dataset's "
            "training set; set `dataset` to a downloadable one (e.g. mnist)."
        )
    if name not in catalogue:
        known = ", ".join(sorted(k for k in catalogue if k != OWN)) or "none"
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


def _catalogue(path: Path) -> dict:
    catalogue = load_yaml(path)
    if not isinstance(catalogue, dict):
        raise PipelineError(f"{path} must map dataset names to entries.")
    return catalogue


def load_own_set(path: Path, name: str, root: Path) -> OwnSet:
    """The `own:` entry `name`, checked: a known kind, a path inside `root` (data/own/, the
    preprocess stage's dep, so that a set outside it could not change unseen)."""
    section = _catalogue(path).get(OWN) or {}
    if not isinstance(section, dict):
        raise PipelineError(f"{path}: `{OWN}:` must map own set names to entries.")
    if name not in section:
        known = ", ".join(sorted(section)) or "none"
        raise PipelineError(
            f"own set {name!r} (in the `mix.sets` param) is not in {path}'s `{OWN}:` section; "
            f"known own sets: {known}. Add it there (kind and path), or remove it from mix.sets."
        )
    entry = section[name]
    where = f"{path}: {OWN}.{name}"
    if not isinstance(entry, dict) or entry.get("kind") not in OWN_KINDS:
        raise PipelineError(f"{where}.kind must be one of {', '.join(OWN_KINDS)}.")
    raw = entry.get("path")
    own = Path(raw) if isinstance(raw, str) and raw else None
    inside = own is not None and not own.is_absolute() and ".." not in own.parts
    if not inside or own.parts[: len(root.parts)] != root.parts or own == root:
        raise PipelineError(
            f"{where}.path is {raw!r}; it must be a relative path inside {root}/ "
            f"(e.g. {root}/{name}), where the preprocess stage watches for changes."
        )
    fraction = entry.get("test_fraction", 0.2)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise PipelineError(f"{where}.test_fraction is {fraction!r}; it must be a number between 0 and 1.")
    return OwnSet(name=name, kind=entry["kind"], path=own, test_fraction=float(fraction))
