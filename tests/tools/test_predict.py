"""The predict command and the image normaliser, on real picture files the tests draw with Pillow.

Digits are printed with Pillow's own font, brought into MNIST's form, and turned into the
kind of picture a person takes: large, dark ink on light paper, off-centre, noisy, saved
as PNG and JPEG. A small model trained here on such digits must read those pictures back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from mnist_classifier import decoding, normalise
from mnist_classifier.errors import PipelineError
from tests.support.commands import predict
from tests.support.params import set_params
from tests.support.paths import ROOT
from tests.support.pictures import mnist_form, photo_of, save
from tests.support.projects import copy_project

# --- the normaliser ----------------------------------------------------------------------------


def test_a_dark_bar_on_paper_becomes_a_centred_20_pixel_bright_bar() -> None:
    """MNIST's definition, checked on a shape whose answer is known: a 100x20 dark bar near a
    corner of a light 300x200 picture becomes a 20x4 bright bar at the centre (a stroke of
    MNIST's width, so taken as it is drawn)."""
    grey = np.full((200, 300), 0.9, dtype=np.float32)
    grey[10:110, 200:220] = 0.1
    digit = normalise.to_mnist(grey)
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (20, 4)
    assert digit.max() == 255 and digit[rows[0] + 2 : rows[-1] - 1, cols[0] + 1 : cols[-1]].min() == 255
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
        back = normalise.to_mnist(decoding.read_image(save(photo_of(digit, rng), tmp_path / f"{i}{suffix}")))
        a, b = digit.astype(float), back.astype(float)
        assert np.abs(a - b).mean() < 20, f"digit {i}: mean pixel error {np.abs(a - b).mean():.1f} of 255"
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_transparent_pixels_count_as_paper(tmp_path: Path) -> None:
    image = Image.new("RGBA", (80, 80), (0, 0, 0, 0))  # transparent black: paper, not ink
    ImageDraw.Draw(image).rectangle((30, 10, 39, 70), fill=(0, 0, 0, 255))
    digit = normalise.to_mnist(decoding.read_image(save(image, tmp_path / "t.png")))
    assert digit.max() == 255 and (digit > 0).sum() < 0.3 * digit.size


# --- the predict command --------------------------------------------------------------------------------


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
    whole = photo_of(mnist_form(1, seed=4)[0][0], np.random.default_rng(1))
    whole.save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:5000])  # cut short
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")  # reading it would wait forever for a writer
    Image.new("L", (64, 64), 255).save(tmp_path / "page.eps")  # Pillow would run Ghostscript on it
    return {
        "missing": (tmp_path / "missing.png", "no such file"),
        "empty": (tmp_path / "empty.png", "not a picture"),
        "text": (tmp_path / "notes.txt", "not a picture"),
        "1x1": (tmp_path / "dot.png", "too small"),
        "blank": (tmp_path / "blank.png", "no ink"),
        "bomb": (tmp_path / "bomb.png", "decompression-bomb"),
        "cut short": (tmp_path / "cut.png", "cannot be read as a picture"),
        "a directory": (tmp_path / "folder.png", "a directory, not a picture"),
        "a pipe": (tmp_path / "pipe.png", "not a regular file"),
        "PostScript": (tmp_path / "page.eps", "not a picture Pillow can read here"),
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


# --- pictures as phones, scanners and drawing programs make them ----------------------------------


def reflectance(digit: np.ndarray, rng: np.random.Generator, paper: float = 0.88) -> np.ndarray:
    """A sheet's reflectance (0-1): the digit 12x larger in dark ink, off-centre on paper, with
    sensor noise. Light falling on it multiplies this, as light does."""
    big = np.asarray(Image.fromarray(digit).resize((336, 336), Image.Resampling.BICUBIC), np.float32) / 255
    sheet = np.full((360, 480), paper, dtype=np.float32)
    top, left = int(rng.integers(0, 24)), int(rng.integers(0, 144))
    sheet[top : top + 336, left : left + 336] -= (paper - 0.08) * big
    return np.clip(sheet + rng.normal(0, 0.02, sheet.shape).astype(np.float32), 0, 1)


def _eight_bit(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8))


def _opacity(digit: np.ndarray, colour: tuple[int, int, int]) -> Image.Image:
    """Ink of one colour on a fully transparent background: only the opacity draws the digit."""
    ink = np.asarray(Image.fromarray(digit).resize((224, 224), Image.Resampling.BICUBIC))
    rgba = np.zeros((300, 260, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[40:264, 20:244, 3] = ink
    return Image.fromarray(rgba, "RGBA")


def _desk(sheet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sheet on a dark desk, filling about half of the photo."""
    desk = np.clip(0.12 + rng.normal(0, 0.02, (500, 680)), 0, 1).astype(np.float32)
    desk[60:420, 110:590] = sheet
    return desk


def _shadow(sheet: np.ndarray) -> np.ndarray:
    light = np.ones_like(sheet)
    light[:, 240:] = 0.5  # a hard shadow edge through the middle, at half the light
    return sheet * light


def _gradient(sheet: np.ndarray) -> np.ndarray:
    return sheet * np.linspace(1.0, 0.35, sheet.shape[1], dtype=np.float32)[None, :]


PICTURE_KINDS = {
    # kind: (suffix, how the picture is made from the digit's sheet)
    "8-bit grey": (".png", lambda s, d, r: _eight_bit(s)),
    "16-bit grey": (".png", lambda s, d, r: Image.fromarray(np.round(s * 65535).astype(np.uint16))),
    "float 0-1": (".tif", lambda s, d, r: Image.fromarray(s, "F")),
    "float 0-1000": (".tif", lambda s, d, r: Image.fromarray(s * 1000, "F")),
    "Lab": (".tif", lambda s, d, r: _eight_bit(s).convert("RGB").convert("LAB")),
    "CMYK JPEG": (".jpg", lambda s, d, r: _eight_bit(s).convert("RGB").convert("CMYK")),
    "palette": (".png", lambda s, d, r: _eight_bit(s).convert("RGB").convert("P")),
    "shadow at 0.5": (".jpg", lambda s, d, r: _eight_bit(_shadow(s)).convert("RGB")),
    "gradient": (".png", lambda s, d, r: _eight_bit(_gradient(s))),
    "dark desk": (".jpg", lambda s, d, r: _eight_bit(_desk(s, r)).convert("RGB")),
    # stored lying on its side, with the EXIF tag that says "turn 90 degrees clockwise"
    "EXIF-rotated JPEG": (
        ".jpg",
        lambda s, d, r: _eight_bit(s).convert("RGB").transpose(Image.Transpose.ROTATE_90),
    ),
    "white ink, transparent": (".png", lambda s, d, r: _opacity(d, (255, 255, 255))),
    "blue ink, transparent": (".png", lambda s, d, r: _opacity(d, (20, 40, 200))),
}


def picture_of(
    kind: str,
    digit: np.ndarray,
    rng: np.random.Generator,
    folder: Path,
    name: str,
    sheet: np.ndarray | None = None,
) -> Path:
    suffix, make = PICTURE_KINDS[kind]
    image = make(reflectance(digit, rng) if sheet is None else sheet, digit, rng)
    path = folder / f"{name}{suffix}"
    if kind == "EXIF-rotated JPEG":
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        image.save(path, quality=90, exif=exif)
    else:
        image.save(path, quality=90) if suffix == ".jpg" else image.save(path)
    return path


@pytest.mark.parametrize("kind", PICTURE_KINDS)
def test_every_kind_of_picture_normalises_as_the_clean_one(tmp_path: Path, kind: str) -> None:
    """The same sheet as an 8-bit PNG in even light is the clean one (a transparent picture's
    clean one is the digit itself): each kind must normalise to the same digit."""
    digits, _ = mnist_form(6, seed=21)
    rng = np.random.default_rng(4)
    for i, digit in enumerate(digits):
        sheet = reflectance(digit, rng)
        clean = (
            digit
            if "transparent" in kind
            else normalise.to_mnist(
                decoding.read_image(picture_of("8-bit grey", digit, rng, tmp_path, f"clean{i}", sheet))
            )
        )
        back = normalise.to_mnist(decoding.read_image(picture_of(kind, digit, rng, tmp_path, str(i), sheet)))
        r = np.corrcoef(clean.astype(float).ravel(), back.astype(float).ravel())[0, 1]
        assert r > 0.9, f"{kind}, digit {i}: correlation {r:.3f} with the clean digit"


def test_the_uneven_light_cases_really_defeat_one_global_threshold(tmp_path: Path) -> None:
    """The control for the shadow and desk cases: the single paper level from the border's
    median, which the normaliser used before, misreads them."""
    digit = mnist_form(1, seed=21)[0][0]
    for make in (_shadow, lambda s: _desk(s, np.random.default_rng(0))):
        grey = make(reflectance(digit, np.random.default_rng(1)))
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        paper = float(np.median(border))
        ink = np.clip(((1 - grey) if paper >= 0.5 else grey) - min(paper, 1 - paper), 0, None)
        ink = ink / ink.max() > normalise.INK
        assert ink.mean() > 0.2  # a fifth of the picture or more taken for ink: a block, not a digit


def test_the_model_reads_every_kind_of_picture(model_file: Path, tmp_path: Path) -> None:
    digits, labels = mnist_form(20, seed=77)  # digits the model never saw
    rng = np.random.default_rng(5)
    files, truth = [], []
    for kind in PICTURE_KINDS:
        for i in range(0, 20, 4):  # 5 digits a kind, a different 5 for each kind
            j = (i + len(files)) % 20
            files.append(picture_of(kind, digits[j], rng, tmp_path, f"{len(files)}"))
            truth.append(str(labels[j]))
    out = predict("--json", "--model", model_file, *files)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    right = sum(r["predicted"] == t for r, t in zip(json.loads(out.stdout), truth))
    assert right >= 0.85 * len(files), f"{right}/{len(files)} right"


def test_an_animated_picture_is_read_from_its_first_frame_with_a_note(
    model_file: Path, tmp_path: Path
) -> None:
    digit = mnist_form(1, seed=3)[0][0]
    first = photo_of(digit, np.random.default_rng(0)).convert("L")
    blanks = [Image.new("L", first.size, shade) for shade in (230, 200)]  # frames that differ
    path = tmp_path / "moving.gif"
    first.save(path, save_all=True, append_images=blanks, duration=100)
    out = predict("--json", "--model", model_file, path)
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 1
    assert out.stderr == f"predict: note: {path}: an animated picture (3 frames); its first frame is read.\n"


BROKEN_MODELS = {
    # name: the files in the zip (a .keras file is a zip archive)
    "no config.json": {"metadata.json": "{}"},
    "a list as config": {"metadata.json": "{}", "config.json": "[1, 2]"},
    "config not JSON": {"metadata.json": "{}", "config.json": "{not json"},
    "a custom layer": {
        "config.json": json.dumps(
            {"module": "my_pkg", "class_name": "MyLayer", "config": {}, "registered_name": "my_pkg>MyLayer"}
        )
    },
    "an unknown layer": {
        "config.json": json.dumps(
            {
                "module": "keras",
                "class_name": "Sequential",
                "config": {
                    "name": "s",
                    "layers": [
                        {
                            "module": "keras.layers",
                            "class_name": "NoSuchLayer",
                            "config": {},
                            "registered_name": None,
                        }
                    ],
                },
            }
        )
    },
}


@pytest.mark.parametrize("case", BROKEN_MODELS)
def test_a_broken_model_file_gets_one_line(tmp_path: Path, case: str) -> None:
    import zipfile

    model = tmp_path / "broken.keras"
    with zipfile.ZipFile(model, "w") as z:
        for name, text in BROKEN_MODELS[case].items():
            z.writestr(name, text)
    good = save(photo_of(mnist_form(1, seed=3)[0][0], np.random.default_rng(0)), tmp_path / "good.png")
    out = predict("--model", model, good)
    assert out.returncode == 1 and out.stdout == "", out.stdout
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"predict: error: {model} is missing or not a valid Keras model ("), (
        out.stderr
    )


def test_a_model_whose_config_would_inflate_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    import zipfile

    from mnist_classifier.predict import checked_model

    model = tmp_path / "bomb.keras"
    with zipfile.ZipFile(model, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", b" " * (64 * 2**20))  # 64 MB of spaces in about 64 kB
    assert model.stat().st_size < 200_000
    with pytest.raises(PipelineError, match=r"config.json would inflate to 67,108,864 bytes"):
        checked_model(model, 10)


# Waits for the command and prints its peak resident memory (KiB) last on stderr. This small
# process starts it, not the test's, because Linux carries a parent's peak across fork and
# exec: a child forked from a test process with TensorFlow loaded would report that.
PEAK_RSS = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss, file=sys.stderr)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def peak_rss_mb(*args: str | Path) -> tuple[float, subprocess.CompletedProcess]:
    """Run the predict command in its own process; its peak resident memory, in MB."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "mnist_classifier.predict", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return int(out.stderr.split()[-1]) / 1024, out


@pytest.mark.parametrize(
    "kind, size, limit_mb",
    [
        ("PNG", (9000, 9000), 600),  # 81 megapixels of RGBA, just under Pillow's bomb limit: read by libvips
        ("JPEG", (8000, 6000), 450),  # a 48-megapixel phone photo
    ],
)
def test_memory_follows_the_decoded_picture(
    model_file: Path, tmp_path: Path, kind: str, size: tuple[int, int], limit_mb: int
) -> None:
    digit = np.asarray(photo_of(mnist_form(1, seed=3)[0][0], np.random.default_rng(0)).convert("L"))
    sheet = Image.new("RGBA" if kind == "PNG" else "RGB", size, "white")
    big = Image.fromarray(digit).resize((size[0] // 2, size[1] // 2), Image.Resampling.BILINEAR)
    sheet.paste(big.convert(sheet.mode), (size[0] // 4, size[1] // 4))
    path = tmp_path / f"big.{kind.lower()}"
    sheet.save(path, compress_level=1) if kind == "PNG" else sheet.save(path, quality=85)
    del sheet, big
    peak, out = peak_rss_mb("--json", "--model", model_file, path)
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 1
    assert peak <= limit_mb, f"peak RSS {peak:.0f} MB for a {size[0]}x{size[1]} {kind}"
