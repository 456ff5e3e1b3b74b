"""Plumbing every stage shares: clear errors, atomic outputs, safe loaders.

Nothing here imports TensorFlow, so light stages stay light.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class PipelineError(Exception):
    """A problem the user can fix; its text is the whole message they see."""


_interrupted = False


def _on_sigint(signum: int, frame: object) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt again if Ctrl-C came earlier.

    A KeyboardInterrupt that lands inside a finaliser (`__del__`, of which TensorFlow and
    DVC's git library have many) is printed and dropped by Python; long loops call this so
    that such a Ctrl-C still stops the stage.
    """
    if _interrupted:
        raise KeyboardInterrupt


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main(): one clear line on stderr and a non-zero exit on failure.

    PipelineError means bad input (exit 1); Ctrl-C exits 130 without a traceback wall.
    Any other exception is a bug, and keeps its traceback.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # `cmd &` in a script ignores it
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        main()
    except PipelineError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output was written.", file=sys.stderr)
        sys.exit(130)


def stage_paths(doc: str, *names: str) -> argparse.Namespace:
    """Parse a stage's command line: each name is a required path option.

    `stage_paths(__doc__, "data", "train_log")` reads `--data PATH --train-log PATH` into
    `args.data` and `args.train_log`, as Paths. dvc.yaml passes every path, so each is required.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, required=True)
    return parser.parse_args()


def use_keras_backend(name: str) -> None:
    """Choose Keras' backend (the `backend` param) and hide TensorFlow's C++ start-up notes.

    Must run before the first `import keras`: Keras reads KERAS_BACKEND once, on import.
    """
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def load_yaml(path: Path) -> Any:
    """Parse a YAML file safely (no object construction), with a readable error."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise PipelineError(f"{path} not found.") from None
    except yaml.constructor.ConstructorError as exc:  # valid YAML, but asks for an object
        line = f", line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise PipelineError(
            f"{path}{line}: refused: {exc.problem}. Only plain data (numbers, strings, lists, "
            "mappings) is read, never Python objects; remove the tag."
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {exc}") from None


def load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load named arrays from an .npz; pickled objects are refused, never executed."""
    if Path(path).is_file() and not zipfile.is_zipfile(path):  # numpy would call it a pickle
        raise PipelineError(f"{path} is not a readable .npz (not a zip archive); "
                            "rerun `dvc repro` to rebuild it.")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise PipelineError(
                    f"{path} lacks {', '.join(missing)}; rerun `dvc repro` to rebuild it."
                )
            return {k: data[k] for k in keys}
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run `dvc repro` to build it.") from None
    except ValueError as exc:  # numpy refuses object arrays without allow_pickle
        raise PipelineError(
            f"{path} holds pickled objects, which are refused ({exc}). "
            "Delete it and rerun `dvc repro`."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise PipelineError(
            f"{path} is not a readable .npz ({exc}); rerun `dvc repro` to rebuild it."
        ) from None


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays to `path` atomically (uncompressed: loading speed beats disk here)."""
    with atomic_output(path) as tmp:
        np.savez(tmp, **arrays)
