"""Pictures as people write them: thin pens and markers, ruled, squared and underlined paper,
whole numbers. Made here with Pillow and NumPy (tests/support/pictures.py) from printed digits
whose labels are known, and read by the predict command with the printed-digit model.
The same kinds made from MNIST's own test digits are read by the real model in
test_dvc_workflow.py and measured by benchmarks/picture_kinds.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_classifier import decoding, normalise, strokes
from tests.support.commands import predict
from tests.support.pictures import (
    PAPER,
    WRITTEN_KINDS,
    mnist_form,
    on_paper,
    pen_drawing,
    ruled_paper,
    save,
    side_by_side,
    underline,
    written,
)


def grey(sheet: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(sheet, 0, 1) * 255).astype(np.uint8))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


# --- what the normaliser does with them ------------------------------------------------------------


@pytest.mark.parametrize("pen", [2, 4, 200])
def test_a_pen_of_any_width_comes_out_at_mnist_s_stroke_width(pen: int) -> None:
    digit = mnist_form(1, seed=8)[0][0]
    drawing = pen_drawing(digit, pen)
    sheet = on_paper(drawing, (drawing.shape[0] + 80, drawing.shape[1] + 80), (40, 40))
    before = normalise.light_on_dark(sheet)
    before[before < normalise.INK] = 0
    assert (
        not strokes.STROKE_BAND[0]
        <= strokes.stroke_width(normalise._cropped(before))
        <= strokes.STROKE_BAND[1]
    )
    out = normalise.to_mnist(sheet)
    ink = out.astype(np.float32) / 255
    ink[ink < normalise.INK] = 0
    assert out.max() >= 250  # full contrast: a 2-pixel line once peaked at 32 of 255
    assert 1.24 <= strokes.stroke_width(ink) <= 4.65  # where 98% of MNIST's test digits are


@pytest.mark.parametrize("paper", ["ruled", "squared"])
def test_printed_lines_are_not_ink(paper: str) -> None:
    """The digit on ruled or squared paper normalises as on plain paper: the lines are gone,
    and the strokes that crossed them are whole."""
    for i, digit in enumerate(mnist_form(5, seed=11)[0]):
        drawing = pen_drawing(digit, 40)
        size = (drawing.shape[0] + 80, drawing.shape[1] + 80)
        printed = ruled_paper(size, 48, grid=paper == "squared")
        plain = normalise.to_digits(on_paper(drawing, size, (40, 40)))
        lined = normalise.to_digits(on_paper(drawing, size, (40, 40), printed))
        assert len(lined) == 1, f"digit {i}: {len(lined)} marks"
        assert correlation(plain[0], lined[0]) > 0.9, f"digit {i}"


def test_long_strokes_of_the_digit_itself_are_not_printed_lines() -> None:
    """A 1 filling the picture's height and a 7 whose bar spans its width are one or two long
    lines, not a ruling: they stay."""
    one = np.full((300, 200), PAPER, dtype=np.float32)
    one[10:290, 95:105] = 0.1
    seven = np.full((300, 200), PAPER, dtype=np.float32)
    seven[20:30, 10:190] = 0.1
    for k in range(250):  # the stem, slanting down to the left
        seven[30 + k, 180 - k // 2 - 5 : 180 - k // 2 + 5] = 0.1
    for sheet in (one, seven):
        assert np.array_equal(
            strokes.without_printed_lines(normalise.light_on_dark(sheet)), normalise.light_on_dark(sheet)
        )


def test_an_underline_is_not_part_of_the_digit() -> None:
    for i, digit in enumerate(mnist_form(5, seed=12)[0]):
        drawing = pen_drawing(digit, 40)
        lined = underline(drawing, 30)
        size = (lined.shape[0] + 80, lined.shape[1] + 80)
        alone = normalise.to_digits(
            on_paper(drawing, size, (40, 40 + (lined.shape[1] - drawing.shape[1]) // 2))
        )
        under = normalise.to_digits(on_paper(lined, size, (40, 40)))
        assert len(under) == 1 and correlation(alone[0], under[0]) > 0.95, f"digit {i}"


def test_digits_side_by_side_are_read_left_to_right_and_specks_are_not_digits() -> None:
    digits = mnist_form(4, seed=13)[0]
    drawings = [pen_drawing(d, 30, height=200) for d in digits]
    row = side_by_side(drawings, gap=50)
    sheet = on_paper(row, (row.shape[0] + 80, row.shape[1] + 80), (40, 40))
    sheet[20:24, 20:24] = 0.1  # a speck of dirt
    found = normalise.to_digits(sheet)
    assert len(found) == 4
    for drawing, digit in zip(drawings, found):  # each as that digit drawn alone
        size = (drawing.shape[0] + 80, drawing.shape[1] + 80)
        assert correlation(normalise.to_mnist(on_paper(drawing, size, (40, 40))), digit) > 0.95

    broken = np.full((300, 200), PAPER, dtype=np.float32)  # a slanted 1 drawn in two strokes
    for k in range(0, 250):
        if not 120 <= k < 140:
            broken[20 + k, 120 - k // 4 : 132 - k // 4] = 0.1
    assert len(normalise.to_digits(broken)) == 1

    touching = side_by_side(drawings[:2], gap=50)  # joined by a stroke: one mark, out of scope
    touching[100:130] = 1
    size = (touching.shape[0] + 80, touching.shape[1] + 80)
    assert len(normalise.to_digits(on_paper(touching, size, (40, 40)))) == 1


# --- what the predict command reads ----------------------------------------------------------------


def test_the_model_reads_each_kind_of_writing(model_file: Path, tmp_path: Path) -> None:
    """Ten digits of each kind, one predict run: at least 9 of each read right."""
    digits, labels = mnist_form(60, seed=44)  # digits the model never saw
    rng = np.random.default_rng(6)
    cases = []
    for k, kind in enumerate(WRITTEN_KINDS):
        for i in range(10):
            j = (10 * k + i) % len(digits)
            cases.append(
                (kind, save(written(kind, [digits[j]], rng), tmp_path / f"{kind}-{i}.png"), str(labels[j]))
            )
    out = predict("--json", "--model", model_file, *(path for _, path, _ in cases))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    answers = [r["predicted"] for r in json.loads(out.stdout)]
    right = {kind: 0 for kind in WRITTEN_KINDS}
    for (kind, _, truth), answer in zip(cases, answers):
        right[kind] += answer == truth
    assert all(n >= 9 for n in right.values()), right


def test_a_number_is_read_left_to_right_with_each_digit_s_chance(model_file: Path, tmp_path: Path) -> None:
    digits, labels = mnist_form(40, seed=45)
    rng = np.random.default_rng(7)
    files, truth = [], []
    for i in range(10):
        picks = rng.choice(len(digits), size=2 + i % 3, replace=False)
        files.append(save(written("number", [digits[j] for j in picks], rng), tmp_path / f"number-{i}.png"))
        truth.append("".join(str(labels[j]) for j in picks))
    files.append(save(written("plain", [digits[0]], rng), tmp_path / "one.png"))
    out = predict("--json", "--model", model_file, *files)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert sum(r["predicted"] == t for r, t in zip(records, truth)) >= 9, [r["predicted"] for r in records]
    for record, number in zip(records, truth):
        assert len(record["digits"]) == len(number), record
        assert record["predicted"] == "".join(d["predicted"] for d in record["digits"])
        assert record["probability"] == pytest.approx(
            np.prod([d["probability"] for d in record["digits"]]), abs=1e-5
        )
    assert "digits" not in records[-1] and "runner_up" in records[-1]  # one digit: the answer as it was

    text = predict("--model", model_file, files[0]).stdout
    first = records[0]
    each = ", ".join(f"{d['predicted']} {round(100 * d['probability'])}%" for d in first["digits"])  # 100%
    assert text == f"{files[0]}: {first['predicted']} (per digit: {each})\n"


def test_a_picture_too_large_to_decode_within_the_budget_and_unshrinkable_is_refused(tmp_path: Path) -> None:
    """A BMP cannot be reduced while it is decoded: past the decode budget it is one line, not
    hundreds of megabytes."""
    path = tmp_path / "poster.bmp"
    Image.new("RGB", (5000, 5000), "white").save(path)  # 75 MB decoded
    with pytest.raises(
        decoding.PictureTooLargeError, match="poster.bmp: a 5000x5000 BMP takes 71 MB to decode"
    ):
        decoding.read_image(path)


SHEET = np.clip(np.random.default_rng(0).normal(0.9, 0.02, (1200, 1500)), 0, 1).astype(np.float32)
SHEET[300:900, 600:700] = 0.1
MODES = {  # name: the picture, as each mode is made from the sheet
    "grey.png": lambda: grey(SHEET),
    "rgba.png": lambda: grey(SHEET).convert("RGBA"),
    "palette.png": lambda: grey(SHEET).convert("RGB").convert("P"),
    "16-bit.png": lambda: Image.fromarray(np.round(SHEET * 65535).astype(np.uint16)),
    "grey-alpha.png": lambda: grey(SHEET).convert("LA"),
    "float.tif": lambda: Image.fromarray(SHEET, "F"),
    "lab.tif": lambda: grey(SHEET).convert("RGB").convert("LAB"),
    "cmyk.tif": lambda: grey(SHEET).convert("RGB").convert("CMYK"),
    "lossless.webp": lambda: grey(SHEET).convert("RGB"),
}


@pytest.mark.parametrize("name", MODES)
def test_libvips_reads_a_large_picture_as_pillow_does(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the decode budget, PNG, TIFF and WebP are shrunk by libvips while decoded: in every
    mode, to the same greyscale Pillow makes of the whole picture."""
    path = tmp_path / name
    MODES[name]().save(path, lossless=True) if name.endswith(".webp") else MODES[name]().save(path)
    monkeypatch.setattr(decoding, "DECODE_BUDGET", 10**12)
    whole = decoding.read_image(path).grey
    monkeypatch.setattr(decoding, "DECODE_BUDGET", 1)
    vips, calls = decoding._vips_reduced, []
    monkeypatch.setattr(decoding, "_vips_reduced", lambda source, k: calls.append(k) or vips(source, k))
    shrunk = decoding.read_image(path).grey
    assert calls and shrunk.shape == whole.shape
    assert np.abs(shrunk - whole).max() < 0.01
