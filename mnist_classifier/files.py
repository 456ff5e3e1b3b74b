"""Files in and out: atomic outputs, and loaders that never run what a file carries.

Nothing here imports TensorFlow, so light stages stay light.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mnist_classifier.errors import PipelineError


def _temp_sibling(path: Path) -> Path:
    """A hidden name beside `path`, keeping its suffix (Keras insists on `.keras`).

    The name is fixed, so a leftover from a killed run is found and replaced next time.
    """
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_output(path: Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; move it onto `path` only if the block succeeds.

    DVC caches whatever a stage leaves at its output paths, so a stage killed or failing
    midway must leave nothing there: outputs appear complete, or not at all.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    _remove(tmp)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if directory:
        _remove(path)  # a directory cannot be renamed onto a non-empty one
    os.replace(tmp, path)


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with numbers read as YAML 1.2 reads them (and DVC, whose YAML is
    1.2): `1e-4` is a number. PyYAML follows YAML 1.1, where a float needs a dot, so a
    hand-written `learning_rate: 1e-4` would be the string '1e-4'."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file safely (no object construction), with a readable error."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise PipelineError(f"{path} not found.") from None
    except IsADirectoryError:
        raise PipelineError(f"{path} is a directory; it must be a YAML file.") from None
    except UnicodeDecodeError as exc:
        raise PipelineError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8."
        ) from None
    except OSError as exc:  # no permission, an unreadable disk
        raise PipelineError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    except yaml.constructor.ConstructorError as exc:  # valid YAML, but asks for an object
        line = f", line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise PipelineError(
            f"{path}{line}: refused: {exc.problem}. Only plain data (numbers, strings, lists, "
            "mappings) is read, never Python objects; remove the tag."
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {exc}") from None


def load_npz(path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load named arrays from an .npz (and those of `optional` it holds); pickled objects are
    refused, never executed."""
    if Path(path).is_file() and not zipfile.is_zipfile(path):  # numpy would call it a pickle
        raise PipelineError(
            f"{path} is not a readable .npz (not a zip archive); rerun `dvc repro` to rebuild it."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise PipelineError(f"{path} lacks {', '.join(missing)}; rerun `dvc repro` to rebuild it.")
            return {k: data[k] for k in (*keys, *optional) if k in data.files}
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run `dvc repro` to build it.") from None
    except ValueError as exc:  # numpy refuses object arrays without allow_pickle
        raise PipelineError(
            f"{path} holds pickled objects, which are refused ({exc}). Delete it and rerun `dvc repro`."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise PipelineError(
            f"{path} is not a readable .npz ({exc}); rerun `dvc repro` to rebuild it."
        ) from None


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez's format (a zip of one uncompressed .npy per array; uncompressed: loading speed
    beats disk here), but the same bytes on every Python.

    np.savez asks zipfile for zip64 headers on every member (`force_zip64`), and what those
    look like changed in a CPython bug-fix release: 3.11.2 and 3.11.7 wrote different files from
    the same arrays. DVC hashes bytes, so the processed data's hash, and every run-cache entry
    downstream of it, depended on the teammate's Python. Here zipfile chooses zip64 itself, only
    for an array that needs it (about 2 GiB); smaller ones get the plain headers every version
    writes alike.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            array = np.asanyarray(value)
            member = zipfile.ZipInfo(f"{name}.npy")  # dated 1980-01-01, as np.savez's: no clock in it
            member.file_size = array.nbytes  # what zipfile decides zip64 by
            with archive.open(member, "w") as out:
                np.lib.format.write_array(out, array, allow_pickle=False)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays to `path` atomically (`write_npz`)."""
    with atomic_output(path) as tmp:
        write_npz(tmp, **arrays)


def load_own_tests(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """own_test.npz (mnist_classifier.dataset): each own set's test split, by name, as (x, y)."""
    names = load_npz(path, ("names",))["names"]
    arrays = load_npz(path, tuple(f"{k}_{name}" for name in names for k in ("x", "y")))
    return {str(name): (arrays[f"x_{name}"], arrays[f"y_{name}"]) for name in names}
