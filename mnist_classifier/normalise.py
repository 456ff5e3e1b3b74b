"""Bring a picture of a handwritten digit into MNIST's form, the way MNIST itself was made.

MNIST's digits are light ink on black, cropped to the ink, scaled so the longer side is 20
pixels (aspect kept, anti-aliased), and placed in a 28x28 field by their centre of mass. A
photo or scan is dark ink on light paper, large, off-centre and noisy; a model fed it as it
is sees nothing it was trained on. predict.py runs every picture through `read_image` and
`to_mnist` first.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mnist_classifier.errors import PipelineError

SIDE, BOX = 28, 20  # the field, and the box the digit's longer side is scaled to
INK = 0.3  # after stretching to [0, 1], brighter than this is ink, the rest background
MIN_SIDE = 2  # a picture needs at least this many pixels each way to hold a digit


def read_image(path: Path) -> np.ndarray:
    """Greyscale pixels in [0, 1] of any picture Pillow reads; transparency counts as paper.

    Pillow's decompression-bomb limit (about 89 megapixels) is an error here, not a warning.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)  # phone photos store their rotation aside
                if im.width < MIN_SIDE or im.height < MIN_SIDE:
                    raise PipelineError(
                        f"{path}: the picture is {im.width}x{im.height} pixels, too small to hold a digit."
                    )
                if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                    paper = Image.new("RGBA", im.size, "white")
                    im = Image.alpha_composite(paper, im.convert("RGBA"))
                grey = np.asarray(im.convert("L"), dtype=np.float32) / 255
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file.") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise PipelineError(
            f"{path}: refused: the picture claims more pixels than Pillow's "
            "decompression-bomb limit; scale it down first."
        ) from None
    except UnidentifiedImageError:
        raise PipelineError(
            f"{path}: not a picture Pillow can read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)."
        ) from None
    except OSError as exc:  # truncated or corrupt data, a directory, no permission
        raise PipelineError(f"{path}: cannot be read as a picture ({exc}).") from None
    return grey


def light_on_dark(grey: np.ndarray) -> np.ndarray:
    """Ink bright, paper 0, contrast stretched to [0, 1]; the border says which is paper."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    ink = grey if paper < 0.5 else 1 - grey
    paper = min(paper, 1 - paper)
    top = float(ink.max())
    if top - paper < 0.1:  # no stroke stands out from the paper
        return np.zeros_like(ink)
    return np.clip((ink - paper) / (top - paper), 0, 1)


def to_mnist(grey: np.ndarray, source: str = "picture") -> np.ndarray:
    """A 28x28 uint8 digit (0-255, light on dark) in MNIST's form, from greyscale in [0, 1]."""
    from PIL import Image

    ink = light_on_dark(grey)
    ink[ink < INK] = 0  # paper grain and JPEG noise are not ink
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if not len(rows):
        raise PipelineError(f"{source}: no ink found: the picture looks blank.")
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    digit = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS)).clip(0, 1)

    mass = digit.sum()
    cy, cx = ((np.indices(digit.shape) * digit).sum(axis=(1, 2)) / mass) if mass else (h / 2, w / 2)
    top = int(np.clip(round((SIDE - 1) / 2 - cy), 0, SIDE - digit.shape[0]))
    left = int(np.clip(round((SIDE - 1) / 2 - cx), 0, SIDE - digit.shape[1]))
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.round(field * 255).astype(np.uint8)
