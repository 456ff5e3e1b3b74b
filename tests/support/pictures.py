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
