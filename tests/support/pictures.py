"""Pictures as people make them: printed digits, photos of a digit on paper, strokes drawn on
the page's canvas, and a small model trained on such strokes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tests.support.params import make_train_params

if TYPE_CHECKING:
    from PIL import Image


def printed_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A digit drawn large in a random size, slant and place, as light-on-dark greyscale."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (96, 96), 0)
    font = ImageFont.load_default(size=int(rng.integers(44, 64)))
    ImageDraw.Draw(canvas).text(
        (int(rng.integers(10, 40)), int(rng.integers(0, 20))),
        str(digit),
        fill=255,
        font=font,
        stroke_width=int(rng.integers(1, 4)),
        stroke_fill=255,
    )
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    return np.asarray(canvas, dtype=np.float32) / 255


def mnist_form(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n printed digits in MNIST's form (28x28 uint8), with their labels."""
    from mnist_classifier import normalise

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    return np.stack([normalise.to_mnist(printed_digit(int(d), rng)) for d in labels]), labels


def photo_of(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A picture as a person makes one: the 28x28 digit 12x larger, dark ink on light grey
    paper, somewhere off-centre on a 480x360 sheet, with sensor noise."""
    from PIL import Image

    big = Image.fromarray(digit).resize((336, 336), Image.Resampling.BICUBIC)
    ink = np.asarray(big, dtype=np.float32) / 255
    sheet = np.full((360, 480), 0.88, dtype=np.float32)
    top, left = int(rng.integers(0, 360 - 336)), int(rng.integers(0, 480 - 336))
    sheet[top : top + 336, left : left + 336] -= 0.8 * ink
    sheet += rng.normal(0, 0.03, sheet.shape).astype(np.float32)
    return Image.fromarray(np.round(np.clip(sheet, 0, 1) * 255).astype(np.uint8)).convert("RGB")


def save(image: Image.Image, path: Path) -> Path:
    image.save(path, quality=85) if path.suffix == ".jpg" else image.save(path)
    return path


def stroke_picture(kind: str, rng: np.random.Generator, side: int = 280, width: int = 18) -> np.ndarray:
    """What a person draws on the page's canvas: black strokes on white, as greyscale 0-1.
    `bar`: a near-vertical line (a 1); `ring`: an ellipse (a 0)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(canvas)
    cx, cy = rng.uniform(0.35, 0.65, 2) * side
    h = rng.uniform(0.45, 0.75) * side
    if kind == "bar":
        dx = rng.uniform(-0.12, 0.12) * h
        draw.line([(cx - dx / 2, cy - h / 2), (cx + dx / 2, cy + h / 2)], fill=0, width=width)
    else:
        w = h * rng.uniform(0.5, 0.8)
        draw.ellipse([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], outline=0, width=width)
    return np.asarray(canvas, dtype=np.float32) / 255


def stroke_model(path: Path, n: int = 600, seed: int = 0) -> Path:
    """A small MLP trained on drawn bars (class 1) and rings (class 0) in MNIST's form, saved
    as the train stage saves: a model a test can draw for."""
    from mnist_classifier import normalise, training

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    x = np.stack([normalise.to_mnist(stroke_picture("bar" if c else "ring", rng)) for c in labels])
    y = np.eye(10, dtype=np.float32)[labels]  # class 1 for a bar, class 0 for a ring
    model = training.train(
        make_train_params(epochs=15, batch_size=32), (x.reshape(n, 784), y), (x[:60].reshape(60, 784), y[:60])
    )
    model.save(path)
    return path


# --- pictures as people write them: pens of any width, printed paper, numbers ---------------------

PAPER, INK_REFLECTANCE, RULING = 0.9, 0.12, 0.55  # reflectances: paper, a pen's ink, printed lines


def pen_drawing(digit: np.ndarray, pen: float, height: int = 430) -> np.ndarray:
    """The digit's shape redrawn by a pen `pen` pixels wide at `height` pixels tall: its
    skeleton (of the 28x28 scaled up) traced with a round nib, as ink coverage 0-1."""
    from PIL import Image
    from scipy import ndimage
    from skimage.morphology import skeletonize

    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = height / crop.shape[0]
    size = (max(1, round(crop.shape[1] * scale)), height)
    big = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    shape = ndimage.gaussian_filter(big, height / 60) > 127  # smooth edges: a skeleton without spurs
    labels, _ = ndimage.label(shape)
    areas = np.bincount(labels.ravel())
    shape &= np.isin(labels, np.flatnonzero(areas >= 0.1 * areas[1:].max())) & (labels > 0)  # no crumbs
    skeleton = np.pad(skeletonize(shape), int(pen) + 2)
    return np.clip(pen / 2 + 0.5 - ndimage.distance_transform_edt(~skeleton), 0, 1).astype(np.float32)


def on_paper(
    coverage: np.ndarray, size: tuple[int, int], at: tuple[int, int], printed: np.ndarray | None = None
) -> np.ndarray:
    """Ink coverage placed at `at` (top, left) on a sheet of `size` (height, width), as
    reflectance: paper, then any printed lines, then the ink over both."""
    sheet = np.full(size, PAPER, dtype=np.float32) if printed is None else printed.copy()
    top, left = at
    h, w = coverage.shape
    region = sheet[top : top + h, left : left + w]
    region[:] = region * (1 - coverage) + INK_REFLECTANCE * coverage
    return sheet


def ruled_paper(size: tuple[int, int], spacing: int, grid: bool = False, offset: int = 7) -> np.ndarray:
    """Paper printed with 2-pixel lines every `spacing` pixels (both ways for squared paper)."""
    sheet = np.full(size, PAPER, dtype=np.float32)
    for y in range(offset, size[0], spacing):
        sheet[y : y + 2] = RULING
    if grid:
        for x in range(offset, size[1], spacing):
            sheet[:, x : x + 2] = RULING
    return sheet


def underline(coverage: np.ndarray, pen: float, gap: int = 24) -> np.ndarray:
    """The drawing with a straight line under it, a little wider than the digit."""
    h, w = coverage.shape
    margin = int(0.15 * w)
    out = np.zeros((h + gap + int(pen) + 4, w + 2 * margin), dtype=np.float32)
    out[:h, margin : margin + w] = coverage
    out[h + gap : h + gap + max(2, int(pen))] = 1
    return out


def side_by_side(drawings: list[np.ndarray], gap: int = 40) -> np.ndarray:
    """Drawings of single digits written left to right, bottoms aligned, `gap` pixels apart."""
    h = max(d.shape[0] for d in drawings)
    w = sum(d.shape[1] for d in drawings) + gap * (len(drawings) - 1)
    out = np.zeros((h, w), dtype=np.float32)
    x = 0
    for d in drawings:
        out[h - d.shape[0] :, x : x + d.shape[1]] = np.maximum(out[h - d.shape[0] :, x : x + d.shape[1]], d)
        x += d.shape[1] + gap
    return out


def written(kind: str, digits: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
    """A picture of the digits (one, or several for `number`) as a person writes them:
    `thin` (a 2-pixel pen at 430 pixels tall), `thick` (a 90-pixel marker: twice MNIST's width),
    `plain`, `ruled`, `squared` or `underlined` (a 12-pixel pen), `number` (2-4 digits side
    by side, 180-220 pixels tall)."""
    from PIL import Image

    pen = {"thin": 2.0, "thick": 90.0}.get(kind, 12.0)
    drawing = (
        side_by_side([pen_drawing(d, pen, height=int(rng.integers(180, 220))) for d in digits])
        if (kind == "number")
        else pen_drawing(digits[0], pen)
    )
    if kind == "underlined":
        drawing = underline(drawing, pen)
    h, w = drawing.shape
    size = (h + 2 * int(rng.integers(30, 60)), w + 2 * int(rng.integers(30, 60)))
    printed = {"ruled": ruled_paper(size, 70), "squared": ruled_paper(size, 48, grid=True)}.get(kind)
    at = (int(rng.integers(20, size[0] - h - 19)), int(rng.integers(20, size[1] - w - 19)))
    sheet = on_paper(drawing, size, at, printed)
    sheet += rng.normal(0, 0.02, sheet.shape).astype(np.float32)
    return Image.fromarray(np.round(np.clip(sheet, 0, 1) * 255).astype(np.uint8))


WRITTEN_KINDS = ("plain", "thin", "thick", "ruled", "squared", "underlined")


def on_paper_digit(digit: int, seed: int) -> Image.Image:
    """A printed digit as dark ink on paper, 96x96."""
    from PIL import Image

    ink = printed_digit(digit, np.random.default_rng(seed))
    return Image.fromarray(np.round((1 - 0.8 * ink) * 240).astype(np.uint8))


def own_folder(root: Path, per_class: int = 2, seed: int = 0) -> list[Path]:
    """An own folder set: root/<label>/*.png, per_class printed digits on paper of each class."""
    paths = []
    for i in range(10 * per_class):
        label = i % 10
        path = root / str(label) / f"p{seed + i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        on_paper_digit(label, seed + i).save(path)
        paths.append(path)
    return paths
