"""The predict command and the image normaliser, on real picture files the tests draw with Pillow.

Digits are printed with Pillow's own font, brought into MNIST's form, and turned into the
kind of picture a person takes: large, dark ink on light paper, off-centre, noisy, saved
as PNG and JPEG. A small model trained here on such digits must read those pictures back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from mnist_classifier import normalise, training
from tests.helpers import ROOT, copy_project, make_train_params, mnist_form, photo_of, save, set_params

# --- the normaliser ----------------------------------------------------------------------------


def test_a_dark_bar_on_paper_becomes_a_centred_20_pixel_bright_bar() -> None:
    """MNIST's definition, checked on a shape whose answer is known: a 100x50 dark block
    near a corner of a light 300x200 picture becomes a 20x10 bright block at the centre."""
    grey = np.full((200, 300), 0.9, dtype=np.float32)
    grey[10:110, 200:250] = 0.1
    digit = normalise.to_mnist(grey)
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (20, 10)
    assert digit.max() == 255 and digit[rows[0] + 2 : rows[-1] - 1, cols[0] + 2 : cols[-1] - 1].min() == 255
    mass = digit.astype(float) / digit.sum()
    centre = [(np.indices(digit.shape)[axis] * mass).sum() for axis in (0, 1)]
    np.testing.assert_allclose(centre, [13.5, 13.5], atol=0.5)


def test_light_ink_on_dark_is_kept_as_it_is() -> None:
    grey = np.zeros((60, 60), dtype=np.float32)
    grey[10:50, 25:35] = 1.0
    np.testing.assert_array_equal(normalise.to_mnist(grey), normalise.to_mnist(1 - grey))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_photo_of_a_digit_normalises_back_to_the_digit(tmp_path: Path, suffix: str) -> None:
    digits, _ = mnist_form(10, seed=5)
    rng = np.random.default_rng(1)
    for i, digit in enumerate(digits):
        back = normalise.to_mnist(normalise.read_image(save(photo_of(digit, rng), tmp_path / f"{i}{suffix}")))
        a, b = digit.astype(float), back.astype(float)
        assert np.abs(a - b).mean() < 20, f"digit {i}: mean pixel error {np.abs(a - b).mean():.1f} of 255"
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_transparent_pixels_count_as_paper(tmp_path: Path) -> None:
    image = Image.new("RGBA", (80, 80), (0, 0, 0, 0))  # transparent black: paper, not ink
    ImageDraw.Draw(image).rectangle((30, 10, 45, 70), fill=(0, 0, 0, 255))
    digit = normalise.to_mnist(normalise.read_image(save(image, tmp_path / "t.png")))
    assert digit.max() == 255 and (digit > 0).sum() < 0.3 * digit.size


# --- the predict command --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MLP trained on printed digits in MNIST's form, saved as the train stage does."""
    x, labels = mnist_form(1000, seed=0)
    y = np.eye(10, dtype=np.float32)[labels]
    p = make_train_params(epochs=30, batch_size=32)
    model = training.train(p, (x.reshape(-1, 784), y), (x[:100].reshape(-1, 784), y[:100]))
    path = tmp_path_factory.mktemp("model") / "printed.keras"
    model.save(path)
    return path


def predict(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_classifier.predict", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_predict_reads_photos_of_digits(model_file: Path, tmp_path: Path) -> None:
    digits, labels = mnist_form(40, seed=99)  # digits the model never saw
    rng = np.random.default_rng(2)
    files = [
        save(photo_of(d, rng), tmp_path / f"{i}_{label}{'.jpg' if i % 2 else '.png'}")
        for i, (d, label) in enumerate(zip(digits, labels))
    ]
    out = predict("--json", "--model", model_file, *files)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [r["file"] for r in records] == [str(f) for f in files]
    right = sum(r["predicted"] == str(label) for r, label in zip(records, labels))
    assert right >= 36, f"{right}/40 right"
    assert all(0.1 <= r["probability"] <= 1 and r["runner_up"] != r["predicted"] for r in records)

    text = predict("--model", model_file, files[0])
    assert text.returncode == 0
    assert text.stdout.startswith(f"{files[0]}: {records[0]['predicted']} (")
    assert "runner-up" in text.stdout


def bad_pictures(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad input, and a word its one-line message must hold."""
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a picture")
    save(Image.new("L", (1, 1), 255), tmp_path / "dot.png")
    save(Image.new("L", (50, 50), 230), tmp_path / "blank.png")
    save(Image.new("1", (9500, 9500), 1), tmp_path / "bomb.png")  # 90 Mpx, a few kB on disk
    return {
        "missing": (tmp_path / "missing.png", "no such file"),
        "empty": (tmp_path / "empty.png", "not a picture"),
        "text": (tmp_path / "notes.txt", "not a picture"),
        "1x1": (tmp_path / "dot.png", "too small"),
        "blank": (tmp_path / "blank.png", "no ink"),
        "bomb": (tmp_path / "bomb.png", "decompression-bomb"),
    }


def test_each_bad_picture_gets_one_line_and_the_good_one_is_still_answered(
    model_file: Path, tmp_path: Path
) -> None:
    good = save(photo_of(mnist_form(1, seed=3)[0][0], np.random.default_rng(0)), tmp_path / "good.png")
    bad = bad_pictures(tmp_path)
    out = predict("--json", "--model", model_file, good, *(path for path, _ in bad.values()))
    assert out.returncode == 1
    assert [r["file"] for r in json.loads(out.stdout)] == [str(good)]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == len(bad) and "Traceback" not in out.stderr
    for line, (path, word) in zip(lines, bad.values()):
        assert line.startswith(f"predict: error: {path}:") and word in line, line


def test_a_model_that_is_not_keras_or_does_not_match_is_refused(tmp_path: Path) -> None:
    import keras

    good = save(photo_of(mnist_form(1, seed=3)[0][0], np.random.default_rng(0)), tmp_path / "good.png")
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    other.save(tmp_path / "cifar.keras")
    cases = {
        tmp_path / "nothing.keras": "no such model",
        tmp_path / "model.h5": "not a .keras model",
        tmp_path / "cifar.keras": "784 pixels to 10 classes",
    }
    for model, words in cases.items():
        out = predict("--model", model, good)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and words in out.stderr and str(model) in out.stderr, out.stderr


def test_predict_names_the_classes_of_the_dataset_in_params(model_file: Path, tmp_path: Path) -> None:
    """Class names come from the catalogue entry of params.yaml's dataset."""
    proj = copy_project(tmp_path / "project")
    set_params(proj / "params.yaml", dataset="fashion_mnist")
    picture = save(photo_of(mnist_form(1, seed=3)[0][0], np.random.default_rng(0)), tmp_path / "p.png")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_classifier.predict",
            "--json",
            "--model",
            str(model_file),
            str(picture),
        ],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=300,
    )
    fashion = yaml.safe_load((ROOT / "datasets.yaml").read_text())["fashion_mnist"]["classes"]
    record = json.loads(out.stdout)[0]
    assert {record["predicted"], record["runner_up"]} <= set(fashion)
