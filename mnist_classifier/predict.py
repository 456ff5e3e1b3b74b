"""Read handwritten digits from your own pictures with the trained model.

    python -m mnist_classifier.predict IMAGE [IMAGE ...] [--json] [--model models/model.keras]
    (or `mnist-predict ...`, or `make predict IMAGES="..."`)

Each picture (PNG, JPEG or anything Pillow reads; dark ink on light paper is fine) is first
brought into MNIST's form (mnist_classifier.normalise), then classified. One line per picture:

    my_seven.jpg: 7 (98.1%), runner-up 1 (1.2%)
    my_number.png: 42 (per digit: 4 97%, 2 91%)

A picture of several digits side by side is read left to right as a number.

A picture that cannot be read gets one line on stderr and exit status 1; the others are
still answered.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from mnist_classifier.catalogue import load_dataset
from mnist_classifier.cli import run_program
from mnist_classifier.config import PARAMS_FILE, fetch_params, read_params
from mnist_classifier.decoding import read_image
from mnist_classifier.errors import PipelineError
from mnist_classifier.inference import load_model
from mnist_classifier.normalise import PIXELS, to_digits
from mnist_classifier.pipeline import pipeline_path

CATALOGUE = Path("datasets.yaml")
# A model archive's JSON (config.json, metadata.json) is parsed whole: a 306 KB file whose
# config.json inflated to 300 MB once took 970 MB to refuse. Ours are a few kB.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def class_names() -> list[str]:
    """The class names of the dataset params.yaml names, from the catalogue."""
    return list(load_dataset(CATALOGUE, fetch_params(read_params(PARAMS_FILE)).dataset).classes)


def checked_model(path: Path, n_classes: int) -> object:
    """The model, refused with one line unless it is a .keras file that maps 784 pixels to
    one probability per class."""
    if not path.is_file():
        raise PipelineError(f"{path}: no such model; train one with `dvc repro` or pass --model.")
    if not zipfile.is_zipfile(path):
        raise PipelineError(f"{path}: not a .keras model file (a .keras file is a zip archive).")
    with zipfile.ZipFile(path) as archive:  # sizes as declared; zipfile never inflates past them
        for entry in archive.infolist():
            if entry.filename.endswith(".json") and entry.file_size > MAX_CONFIG_BYTES:
                raise PipelineError(
                    f"{path}: its {entry.filename} would inflate to {entry.file_size:,} bytes; a model's "
                    f"config is a few kB (at most {MAX_CONFIG_BYTES:,} are read): this is no model of ours."
                )
    model = load_model(path)
    if tuple(model.input_shape) != (None, PIXELS) or tuple(model.output_shape) != (None, n_classes):
        raise PipelineError(
            f"{path}: the model maps {model.input_shape[1:]} to {model.output_shape[1:]}, "
            f"but this project's models map {PIXELS} pixels to {n_classes} classes."
        )
    return model


def _answer(p: np.ndarray, classes: list[str]) -> dict:
    first, second = np.argsort(-p, kind="stable")[:2]
    return {
        "predicted": classes[first],
        "probability": round(float(p[first]), 6),
        "runner_up": classes[second],
        "runner_up_probability": round(float(p[second]), 6),
    }


def joined(labels: list[str], classes: list[str]) -> str:
    """A number's digits read left to right: "42"; classes longer than a character (Fashion-
    MNIST's) are spaced out."""
    return ("" if all(len(c) == 1 for c in classes) else " ").join(labels)


def answers(files: list[Path], counts: list[int], probs: np.ndarray, classes: list[str]) -> list[dict]:
    """One record per picture: the predicted class, its probability, and the runner-up; for a
    picture of several digits (`counts` of them), the number read left to right, the chance
    that every digit is right, and each digit's own record under "digits"."""
    records, start = [], 0
    for file, count in zip(files, counts):
        digits = [_answer(p, classes) for p in probs[start : start + count]]
        start += count
        if count == 1:
            records.append({"file": str(file), **digits[0]})
            continue
        joint = float(np.prod([d["probability"] for d in digits]))
        number = joined([d["predicted"] for d in digits], classes)
        records.append(
            {"file": str(file), "predicted": number, "probability": round(joint, 6), "digits": digits}
        )
    return records


def line(record: dict) -> str:
    """A record as predict prints it: `7.png: 7 (98.1%), runner-up 1 (1.2%)`, or for a number
    `42.png: 42 (per digit: 4 97%, 2 91%)`."""
    if "digits" in record:
        each = ", ".join(f"{d['predicted']} {100 * d['probability']:.0f}%" for d in record["digits"])
        return f"{record['file']}: {record['predicted']} (per digit: {each})"
    return (
        f"{record['file']}: {record['predicted']} ({100 * record['probability']:.3g}%), "
        f"runner-up {record['runner_up']} ({100 * record['runner_up_probability']:.2g}%)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    parser.add_argument(
        "--model",
        type=Path,
        help="a .keras file from the train stage (default: dvc.yaml's model_file, models/model.keras)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    args = parser.parse_args(argv)
    classes = class_names()
    model = checked_model(args.model or pipeline_path("model_file"), len(classes))
    good, counts, digits = [], [], []
    for path in args.images:
        try:
            picture = read_image(path)
            for note in picture.notes:
                print(f"predict: note: {note}", file=sys.stderr)
            found = to_digits(picture, str(path))
            digits += found
            counts.append(len(found))
            good.append(path)
        except PipelineError as exc:
            print(f"predict: error: {exc}", file=sys.stderr)
    records = []
    if digits:
        probs = model.predict(np.stack(digits).reshape(len(digits), PIXELS), verbose=0)
        records = answers(good, counts, probs, classes)
    if args.json:
        print(json.dumps(records, indent=2))
    for r in records if not args.json else []:
        print(line(r))
    return 0 if len(good) == len(args.images) else 1


def cli() -> None:
    """The `mnist-predict` console script."""
    run_program("predict", main)


if __name__ == "__main__":
    cli()
