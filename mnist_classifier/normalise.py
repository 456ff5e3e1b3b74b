"""Bring a picture of a handwritten digit into MNIST's form, the way MNIST itself was made.

MNIST's digits are light ink on black, cropped to the ink, scaled so the longer side is 20
pixels (aspect kept, anti-aliased), and placed in a 28x28 field by their centre of mass. A
photo or scan is dark ink on light paper, large, off-centre, unevenly lit and noisy; a model
fed it as it is sees nothing it was trained on. The predict command runs every picture
through `read_image` and `to_mnist` first.

Pictures come as phones, scanners and drawing programs make them: 8- or 16-bit, float,
greyscale, RGB(A), palette, CMYK or Lab, often tens of megapixels. Each is shrunk as early as
its format allows (a JPEG is decoded at reduced size; anything else is reduced before any
float copy), converted by its own range, and only then analysed, so memory follows the
decoded picture, not copies of it.
"""

from __future__ import annotations

import math
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnist_classifier.errors import PipelineError

SIDE, BOX = 28, 20  # the field, and the box the digit's longer side is scaled to
PIXELS = SIDE * SIDE  # what the models take: the field, flattened
# The raster formats Pillow decodes by itself. Not EPS or PDF: Pillow hands those to Ghostscript,
# an interpreter, which has no business running on a stranger's upload.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")
INK = 0.3  # after stretching to [0, 1], brighter than this is ink, the rest background
MIN_SIDE = 2  # a picture needs at least this many pixels each way to hold a digit
ANALYSIS_SIDE = 512  # pictures are analysed at most this large: strokes stay many pixels wide
STROKE_WINDOW = 1 / 3  # of the shorter side: marks thinner than this are ink, wider ones light
DESK = 0.3  # "paper" darker than this share of the brightest paper is a desk: no ink there
SHEET = 0.3  # a dark border round a bright area at least this large: a sheet on a desk
# EXIF orientation -> the transpose that undoes it (the table Pillow's exif_transpose uses);
# applied after shrinking, since exif_transpose copies the full-size picture first.
ORIENTATION = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


class PictureTooLargeError(PipelineError):
    """A picture refused for its size (over a server's side limit, or Pillow's bomb limit):
    serve answers 413 for it, 422 for any other unreadable picture."""


@dataclass
class Picture:
    """A picture as read: greyscale in [0, 1], or its opacity when that is where the ink is."""

    grey: np.ndarray  # float32, at most ANALYSIS_SIDE pixels a side
    ink_is_opacity: bool = False  # a transparent background: grey holds the opacity
    notes: list[str] = field(default_factory=list)  # things the user should know, one line each


def _shrink_factor(width: int, height: int) -> int:
    return max(1, math.ceil(max(width, height) / ANALYSIS_SIDE))


def _as_array(im: object) -> np.ndarray:
    """Pixels as float32 in [0, 1] by the picture's own range: integers by their type's full
    scale, floats by their own minimum and maximum (a float TIFF may hold 0-1 or 0-65535)."""
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im, dtype=np.float32) / 65535
    if mode == "I":
        a = np.asarray(im, dtype=np.float32)
        top = 65535 if a.max(initial=0) > 255 else 255
        return a / top
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        low, high = float(np.nanmin(a)), float(np.nanmax(a))
        return np.nan_to_num((a - low) / (high - low) if high > low else np.zeros_like(a))
    return np.asarray(im, dtype=np.float32) / 255


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean of k x k blocks, in float32 (for the modes Pillow's `reduce` does not take)."""
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return a[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3), dtype=np.float32)


def _decode(im: object, path: str) -> Picture:
    """The open picture, shrunk first, then turned into greyscale or opacity."""
    from PIL import Image

    notes = []
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(f"{path}: an animated picture ({frames} frames); its first frame is read.")
    orientation = im.getexif().get(0x0112, 1)
    k = _shrink_factor(*im.size)
    if im.format == "JPEG" and k > 1:
        im.draft(im.mode if im.mode in ("L", "RGB") else None, (im.width // k, im.height // k))
        k = _shrink_factor(*im.size)  # what is left after decoding at 1/2, 1/4 or 1/8
    if im.mode in ("P", "1") or (im.mode == "L" and "transparency" in im.info):
        im = im.convert("RGBA" if "transparency" in im.info else "L")
    if im.mode == "LAB":
        im = im.getchannel("L")  # lightness: what ink and paper differ in
    if im.mode.startswith("I;16"):  # Pillow does not reduce 16-bit; numpy's blocks do
        grey = _block_mean(np.asarray(im, dtype=np.uint16), k) / 65535
        alpha = None
    else:
        if k > 1:
            im = im.reduce(k)
        if im.mode == "CMYK":
            im = im.convert("RGB")
        alpha = _as_array(im.getchannel("A")) if im.mode in ("RGBA", "LA", "PA") else None
        if im.mode in ("RGB", "RGBA", "LA", "PA", "YCbCr", "HSV"):
            im = im.convert("L")
        grey = _as_array(im)
    if orientation in ORIENTATION:
        transpose = getattr(Image.Transpose, ORIENTATION[orientation])
        grey = np.asarray(Image.fromarray(grey).transpose(transpose))
        alpha = None if alpha is None else np.asarray(Image.fromarray(alpha).transpose(transpose))
    if alpha is not None and (alpha > 0.5).mean() < 0.5:
        # Mostly transparent: the strokes are the opaque pixels, whatever their colour.
        return Picture(alpha.astype(np.float32), ink_is_opacity=True, notes=notes)
    if alpha is not None:  # transparency counts as paper: composite onto white
        grey = grey * alpha + (1 - alpha)
    return Picture(np.ascontiguousarray(grey, dtype=np.float32), notes=notes)


def read_image(source: Path | BinaryIO, name: str | None = None, max_side: int | None = None) -> Picture:
    """The picture in a file (or a file-like object, e.g. a request's body), shrunk and in
    [0, 1]; any failure is one clear PipelineError that starts with `name` (the path).

    Pillow's decompression-bomb limit (about 89 megapixels) is an error here, not a warning;
    `max_side` refuses larger pictures before they are decoded (a server's limit).
    """
    from PIL import Image, UnidentifiedImageError

    path = name or str(source)
    try:
        mode = source.stat().st_mode if isinstance(source, Path) and source.exists() else stat.S_IFREG
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            # A FIFO or a device would block the read forever, or never end.
            raise PipelineError(
                f"{path}: not a regular file (a pipe or a device); save the picture to a file."
            )
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=FORMATS) as im:
                if im.width < MIN_SIDE or im.height < MIN_SIDE:
                    raise PipelineError(
                        f"{path}: the picture is {im.width}x{im.height} pixels, too small to hold a digit."
                    )
                if max_side and max(im.size) > max_side:
                    raise PictureTooLargeError(
                        f"{path}: the picture is {im.width}x{im.height} pixels; at most {max_side} "
                        "a side is taken: scale it down."
                    )
                return _decode(im, path)
    except PipelineError:
        raise
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: a directory, not a picture.") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise PictureTooLargeError(
            f"{path}: refused: the picture claims more pixels than Pillow's "
            "decompression-bomb limit; scale it down first."
        ) from None
    except UnidentifiedImageError:
        raise PipelineError(
            f"{path}: not a picture Pillow can read here ({', '.join(FORMATS)}); save it as PNG or JPEG."
        ) from None
    except MemoryError:
        raise PipelineError(f"{path}: too large to decode in the memory available; scale it down.") from None
    except Exception as exc:  # noqa: BLE001 - a decoder's error on this file is the file's problem
        raise PipelineError(
            f"{path}: cannot be read as a picture ({type(exc).__name__}: {exc}); "
            "save it as an 8-bit PNG or JPEG and try again."
        ) from None


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that best splits them in two groups."""
    hist, edges = np.histogram(values, bins=64, range=(0, 1))
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * (edges[:-1] + edges[1:]) / 2)
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(edges[1:][int(np.argmax(between))])


def _window(grey: np.ndarray) -> int:
    """The side of the square wider than any stroke (odd, so it has a centre)."""
    return max(3, int(min(grey.shape) * STROKE_WINDOW) | 1)


def _holds_a_sheet(grey: np.ndarray) -> bool:
    """Whether a picture with a dark border holds a bright area too large for strokes: a
    sheet of paper on a desk (filling a third of the photo or more), rather than light
    strokes on a dark field (MNIST's digits light a fifth of their field)."""
    return float((grey > _otsu(grey)).mean()) >= SHEET


def _dark_ink(grey: np.ndarray) -> np.ndarray:
    """Dark ink on paper however it is lit: each pixel against the paper around it.

    The paper's own brightness is a grey closing (SciPy's, separable, so fast at any size)
    with a window wider than a stroke: strokes vanish from it, while a shadow's edge or a
    desk round the sheet, being wider, stays. Ink is then how much darker a pixel is than its
    local paper, relative to that paper, so a stroke in a shadow at half the light counts as
    one in full light; where the "paper" is a dark desk, nothing is ink.
    """
    from scipy import ndimage

    window = _window(grey)
    # Odd reflection at the edges continues the light's slope past them; with plain padding
    # a gradient's darker edge would look darker than its paper: a false stroke along it.
    smooth = ndimage.median_filter(grey, size=3)  # sensor noise would lift the paper's maximum
    padded = np.pad(smooth, window, mode="reflect", reflect_type="odd")
    paper = ndimage.grey_closing(padded, size=(window, window))[window:-window, window:-window]
    brightest = float(np.percentile(paper, 95))
    ink = np.clip((paper - grey) / np.maximum(paper, 0.4 * brightest), 0, 1)
    ink[paper < DESK * brightest] = 0  # far darker than the paper: a desk, not paper with ink
    return ink


def light_on_dark(picture: Picture | np.ndarray) -> np.ndarray:
    """Ink bright, paper 0, contrast stretched to [0, 1].

    Light ink on a dark field (MNIST, a drawing program) is taken as it is; dark ink on light
    paper, also a sheet photographed on a dark desk, is measured against its local paper.
    """
    if isinstance(picture, np.ndarray):
        picture = Picture(picture.astype(np.float32))
    grey = picture.grey
    if picture.ink_is_opacity:
        ink = grey
    else:
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        dark_field = float(np.median(border)) < 0.5
        sheet = dark_field and _holds_a_sheet(grey)
        if dark_field and not sheet:
            ink = grey - float(np.median(border))
        else:
            ink = _dark_ink(grey)
    top = float(ink.max())
    if top < 0.1:  # no stroke stands out from the paper
        return np.zeros_like(ink)
    return np.clip(ink / top, 0, 1)


def to_mnist(picture: Picture | np.ndarray, source: str = "picture") -> np.ndarray:
    """A 28x28 uint8 digit (0-255, light on dark) in MNIST's form."""
    from PIL import Image

    ink = light_on_dark(picture)
    ink[ink < INK] = 0  # paper grain and JPEG noise are not ink
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if not len(rows):
        raise PipelineError(f"{source}: no ink found: the picture looks blank.")
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    digit = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS)).clip(0, 1)

    # Centre of mass to the field's centre, by a sub-pixel shift (bilinear): an integer
    # shift jumps a whole pixel when the centre of mass crosses a half, so two pictures of
    # one digit could come out a pixel apart.
    mass = digit.sum()
    cy, cx = ((np.indices(digit.shape) * digit).sum(axis=(1, 2)) / mass) if mass else (h / 2, w / 2)
    top = float(np.clip((SIDE - 1) / 2 - cy, 0, SIDE - digit.shape[0]))
    left = float(np.clip((SIDE - 1) / 2 - cx, 0, SIDE - digit.shape[1]))
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    field[: digit.shape[0], : digit.shape[1]] = digit
    moved = Image.fromarray(field).transform(
        (SIDE, SIDE), Image.Transform.AFFINE, (1, 0, -left, 0, 1, -top), resample=Image.Resampling.BILINEAR
    )
    return np.round(np.clip(np.asarray(moved), 0, 1) * 255).astype(np.uint8)
