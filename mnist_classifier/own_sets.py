"""Your own digits as a dataset: a folder of labelled pictures, or a CSV in Kaggle's layout.

Each picture is read and brought into MNIST's form exactly as predict reads a picture
(`decoding.read_image`, then `normalise.to_mnist`), so what the model learns from your set
is what it will see when you ask it. Everything is checked before anything is written: a
label that is no class, a file that is no picture, a blank or huge picture, a digit that is
in both the training and the test split. Each bad file is one line naming it and what to do,
and the stage fails with all of them listed, so one run shows every fix to make.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_classifier.catalogue import OwnSet
from mnist_classifier.errors import PipelineError, raise_if_interrupted

SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_BYTES = 16 * 2**20  # one digit's picture: a larger file is something else (a video, a scan of a page)
MAX_SIDE = 10_000  # pixels a side, refused before decoding
SHOWN = 25  # bad files listed by name; the rest are counted
PARALLEL_FROM = 200  # pictures: fewer are read in this process (a pool costs about a second to start)
MAX_COLLECTED = 10_000  # pictures `serve --collect` puts in a folder: past that, `dvc add` it and start anew
CSV_HEADER = ["label", *(f"pixel{i}" for i in range(784))]
SPLITS = ("train", "test")


@dataclass
class Pictures:
    """Digits in MNIST's form (N x 784 uint8, light on dark), their class indices, and where
    each came from (a file, or a CSV's line), for messages."""

    x: np.ndarray
    labels: np.ndarray
    sources: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> Pictures:
        return Pictures(self.x[index], self.labels[index], [self.sources[i] for i in index])


def _refused(own: OwnSet, problems: list[str], total: int) -> PipelineError:
    lines = problems[:SHOWN]
    if len(problems) > SHOWN:
        lines.append(f"... and {len(problems) - SHOWN} more")
    return PipelineError(
        f"{len(problems)} of {total} entries of own set {own.name!r} ({own.path}) are refused; fix or "
        "remove each, then rerun (nothing was written):\n  " + "\n  ".join(lines)
    )


def _label_dirs(root: Path, classes: tuple[str, ...], problems: list[str]) -> Iterator[tuple[int, Path]]:
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            continue  # a README beside the label folders
        if entry.name not in classes:
            problems.append(
                f"{entry}: folder {entry.name!r} is no class name ({', '.join(classes)}); "
                "rename it to the label of the pictures in it, or move it out"
            )
            continue
        yield classes.index(entry.name), entry


def _digit(path: Path) -> np.ndarray:
    """One picture file as a 784-pixel digit in MNIST's form, as predict reads it."""
    from mnist_classifier.decoding import read_image
    from mnist_classifier.normalise import to_mnist

    if path.stat().st_size > MAX_BYTES:
        raise PipelineError(
            f"{path}: {path.stat().st_size / 2**20:.0f} MB, more than a digit's picture needs "
            f"(at most {MAX_BYTES // 2**20} MB); scale it down"
        )
    return to_mnist(read_image(path, max_side=MAX_SIDE), str(path)).reshape(-1)


def _read(path: Path) -> np.ndarray | str:
    """A picture's digit, or the line saying what is wrong with the file."""
    if path.suffix.lower() not in SUFFIXES:
        return f"{path}: not a picture ({'/'.join(SUFFIXES)}); convert it to PNG or remove it"
    try:
        return _digit(path)
    except PipelineError as exc:
        return str(exc).rstrip(".")


def _read_all(paths: list[Path]) -> list[np.ndarray | str]:
    """_read() of each path, in order, on every core when there are many (12 ms a picture:
    the 1,797 of the demo set take 11 s on two cores instead of 22)."""
    if len(paths) < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        return [_read(path) for path in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver")  # no fork of a process with threads
    with ProcessPoolExecutor(os.cpu_count(), mp_context=context) as pool:
        return list(pool.map(_read, paths, chunksize=32))


def read_folder(root: Path, classes: tuple[str, ...], problems: list[str]) -> tuple[Pictures, int]:
    """Every picture under root/<label>/, and how many files were looked at; a bad file is a
    line in `problems`."""
    found = [
        (label, path)
        for label, folder in _label_dirs(root, classes, problems)
        for path in sorted(folder.rglob("*"))
        if not path.name.startswith(".") and not path.is_dir()
    ]
    raise_if_interrupted()
    xs, labels, sources = [], [], []
    for (label, path), digit in zip(found, _read_all([path for _, path in found])):
        if isinstance(digit, str):
            problems.append(digit)
            continue
        xs.append(digit)
        labels.append(label)
        sources.append(str(path))
    x = np.array(xs, dtype=np.uint8).reshape(-1, 784)
    return Pictures(x, np.array(labels, dtype=np.int64), sources), len(found)


def in_mnist_form(row: np.ndarray) -> bool:
    """A CSV row already as MNIST is: light ink on black, inside the 20-pixel box, centred by
    mass. Kaggle's digit CSVs are MNIST itself, and sending them through the normaliser again
    would only blur them (and take 12 ms a row)."""
    image = row.reshape(28, 28).astype(np.float64)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if not image.any() or border.max() > 0:
        return False
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    if rows[-1] - rows[0] >= 20 and cols[-1] - cols[0] >= 20:
        return False
    cy, cx = (np.indices(image.shape) * image).sum(axis=(1, 2)) / image.sum()
    return abs(cy - 13.5) <= 2 and abs(cx - 13.5) <= 2


def read_csv(path: Path, classes: tuple[str, ...], problems: list[str]) -> tuple[Pictures, int]:
    """Rows of `label,pixel0..pixel783` (labels by class index, pixels 0-255 of a 28x28
    picture); a row in another form goes through the normaliser as a 28x28 picture."""
    from mnist_classifier.normalise import to_mnist

    xs, labels, sources, rows = [], [], [], 0
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header] != CSV_HEADER:
                start = ",".join(header[:3]) if header else "nothing"
                problems.append(
                    f"{path}, line 1: the header is {start},...; it must be label,pixel0,...,pixel783 "
                    "(Kaggle's digit layout: one label and 784 pixels a row)"
                )
                return Pictures(np.zeros((0, 784), np.uint8), np.zeros(0, np.int64), []), 1
            for number, row in enumerate(reader, start=2):
                if not row:
                    continue
                rows += 1
                where = f"{path}, line {number}"
                try:
                    values = np.array([int(v) for v in row], dtype=np.int64)
                except ValueError:
                    problems.append(
                        f"{where}: not all whole numbers; each row is a label and 784 pixels 0-255"
                    )
                    continue
                if len(values) != 785:
                    problems.append(f"{where}: {len(values)} values, not 785 (a label and 784 pixels)")
                    continue
                if not 0 <= values[0] < len(classes):
                    problems.append(f"{where}: label {values[0]} is outside 0-{len(classes) - 1}")
                    continue
                if values[1:].min() < 0 or values[1:].max() > 255:
                    problems.append(f"{where}: pixels must be 0-255")
                    continue
                pixels = values[1:].astype(np.uint8)
                if not in_mnist_form(pixels):
                    try:
                        pixels = to_mnist(pixels.reshape(28, 28) / np.float32(255), where).reshape(-1)
                    except PipelineError as exc:
                        problems.append(str(exc).rstrip("."))
                        continue
                xs.append(pixels)
                labels.append(int(values[0]))
                sources.append(where)
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text; save it as a plain CSV")
    x = np.array(xs, dtype=np.uint8).reshape(-1, 784)
    return Pictures(x, np.array(labels, dtype=np.int64), sources), rows


def _fingerprint(pixels: np.ndarray) -> str:
    return hashlib.sha256(pixels.tobytes()).hexdigest()


def _check_duplicates(splits: dict[str, Pictures], problems: list[str]) -> None:
    """The same digit (after normalising) in both splits, or under two labels."""
    first: dict[str, tuple[str, int, str]] = {}
    for split, pictures in splits.items():
        for pixels, label, source in zip(pictures.x, pictures.labels, pictures.sources):
            key = _fingerprint(pixels)
            if key not in first:
                first[key] = (split, int(label), source)
                continue
            other_split, other_label, other = first[key]
            if other_label != label:
                problems.append(
                    f"{source}: the same digit as {other}, under another label; remove the wrong one"
                )
            elif other_split != split:
                problems.append(
                    f"{source}: the same digit as {other}, in the {other_split} split; a digit in "
                    "both splits makes the test score a memory test: remove one"
                )


def _dedupe(pictures: Pictures) -> Pictures:
    """One of each digit: pictures saved twice (a double click on the page) count once, and
    never land on both sides of a split."""
    keys = [_fingerprint(p) for p in pictures.x]
    keep = np.array(sorted({k: i for i, k in reversed(list(enumerate(keys)))}.values()), dtype=np.int64)
    return pictures.take(keep)


Split = Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]


def read_own_set(own: OwnSet, classes: tuple[str, ...], split: Split) -> tuple[Pictures, Pictures]:
    """The set's (training, test) digits, every entry checked.

    A folder with train/ and test/ keeps that split (e.g. by writer); any other set is split
    by `split(labels, fraction)` (preprocess' seeded, stratified split), after duplicates are
    counted once. Any bad entry fails the whole set, listing them all.
    """
    root = own.path
    if not root.exists():
        raise PipelineError(
            f"own set {own.name!r}: {root} does not exist; `dvc pull {root}` if it is tracked, "
            "or create it (docs/own-data.md), or remove it from the `mix.sets` param."
        )
    problems: list[str] = []
    if own.kind == "csv":
        if not root.is_file():
            raise PipelineError(f"own set {own.name!r}: {root} is not a file; a csv set is one .csv file.")
        everything, total = read_csv(root, classes, problems)
        splits = None
    elif not root.is_dir():
        raise PipelineError(f"own set {own.name!r}: {root} is not a folder of <label>/ folders.")
    elif all((root / s).is_dir() for s in SPLITS):
        splits, total = {}, 0
        for name in SPLITS:
            splits[name], seen = read_folder(root / name, classes, problems)
            total += seen
        _check_duplicates(splits, problems)
    else:
        everything, total = read_folder(root, classes, problems)
        splits = None
    if problems:
        raise _refused(own, problems, total)
    if splits is None:
        _check_duplicates({"set": everything}, problems)  # one digit under two labels
        if problems:
            raise _refused(own, problems, total)
        everything = _dedupe(everything)
        if len(everything) < 2:
            raise PipelineError(
                f"own set {own.name!r} ({root}) holds {len(everything)} picture(s); it needs at "
                "least two, one to train on and one to test with."
            )
        train_idx, test_idx = split(everything.labels, own.test_fraction)
        splits = {"train": everything.take(train_idx), "test": everything.take(test_idx)}
    for name, pictures in splits.items():
        if not len(pictures):
            raise PipelineError(f"own set {own.name!r}: its {name} split is empty; add pictures to it.")
    return splits["train"], splits["test"]


def save_picture(root: Path, label: str, body: bytes) -> tuple[Path | None, int]:
    """Save a corrected picture as root/<label>/<hash>.<png|jpg>, whole or not at all:
    (its path, the pictures in root), or (None, count) when root is full. Named by content, so
    a picture saved twice (a double click) is one file; not a PNG or JPEG, it is saved as PNG."""
    if label in ("", ".", "..") or "/" in label or "\\" in label or label.startswith("."):
        raise PipelineError(
            f"class {label!r} cannot name a folder; a folder set needs class names that are plain "
            "names (as MNIST's 0-9 are)."
        )
    count = sum(1 for _ in root.rglob("*") if _.is_file())
    if count >= MAX_COLLECTED:
        return None, count
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        suffix = ".png"
    elif body.startswith(b"\xff\xd8\xff"):
        suffix = ".jpg"
    else:  # WebP, TIFF, ...: what the own set reader takes
        import io

        from PIL import Image

        out = io.BytesIO()
        with Image.open(io.BytesIO(body)) as im:
            im.save(out, format="PNG")
        body, suffix = out.getvalue(), ".png"
    folder = root / label
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(body).hexdigest()[:16]}{suffix}"
    if not path.exists():
        tmp = folder / f".{path.name}.tmp"
        tmp.write_bytes(body)
        os.replace(tmp, path)
        count += 1
    return path, count
