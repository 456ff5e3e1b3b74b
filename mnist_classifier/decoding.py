"""Read a picture file into greyscale (or opacity), shrunk as early as its format allows.

Pictures come as phones, scanners and drawing programs make them: 8- or 16-bit, float,
greyscale, RGB(A), palette, CMYK or Lab, often tens of megapixels. Each is shrunk while or
right after it is decoded (a JPEG at 1/2, 1/4 or 1/8 of its size; a large PNG, TIFF or WebP
by libvips, a strip at a time), converted by its own range, and only then analysed, so
memory follows the shrunk picture, not the decoded one. Formats that cannot be shrunk while
decoded are refused past a decoded size (DECODE_BUDGET) with one line.
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

# The raster formats Pillow decodes by itself. Not EPS or PDF: Pillow hands those to Ghostscript,
# an interpreter, which has no business running on a stranger's upload.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")
MIN_SIDE = 2  # a picture needs at least this many pixels each way to hold a digit
ANALYSIS_SIDE = 512  # pictures are analysed at most this large: strokes stay many pixels wide
# Decoded larger than this, a picture is reduced while it is decoded (a JPEG by Pillow's draft
# mode, the VIPS_FORMATS by libvips), or refused: the model and this keep predict under 600 MB.
DECODE_BUDGET = 64 * 2**20
VIPS_FORMATS = ("PNG", "TIFF", "WEBP")  # what libvips reads a strip at a time
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


def _decoded_bytes(im: object) -> int:
    depth = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}.get(im.mode, 1)
    return im.width * im.height * len(im.getbands()) * depth


def _vips_reduced(source: Path | BinaryIO, k: int) -> object:
    """The picture shrunk k times by libvips (block means), decoded a strip at a time so the
    whole picture is never in memory, as a Pillow image of the mode Pillow would have read."""
    import pyvips
    from PIL import Image

    pyvips.cache_set_max(0)  # keep no decoded pixels between pictures
    if isinstance(source, Path):
        image = pyvips.Image.new_from_file(str(source), access="sequential")
    else:
        source.seek(0)
        image = pyvips.Image.new_from_buffer(source.read(), "", access="sequential")
    cmyk = image.interpretation == "cmyk"
    lab = image.interpretation in ("lab", "labs")
    if lab:
        image = image[0] * 2.55  # lightness, 0-100 as 0-255: what Pillow's L channel holds
    a = image.shrink(k, k).numpy()
    if lab:
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    if cmyk:  # as Pillow converts it: no colour profile, 255 - (C + K) and so on
        a = np.clip(255 - (a[..., :3].astype(np.int16) + a[..., 3:4]), 0, 255)
    if a.dtype == np.uint16 and a.ndim == 3:  # 16-bit colour: Pillow reads it as 8-bit too
        a = (a // 257).astype(np.uint8)
    if a.dtype.kind == "f":
        return Image.fromarray((a if a.ndim == 2 else a[..., 0]).astype(np.float32), "F")
    if a.dtype == np.uint16:
        return Image.fromarray(a)  # I;16
    return Image.fromarray(
        a.astype(np.uint8), {2: "L", 3: {2: "LA", 3: "RGB", 4: "RGBA"}.get(a.shape[-1])}[a.ndim]
    )


def _decode(im: object, path: str, source: Path | BinaryIO) -> Picture:
    """The open picture, shrunk first, then turned into greyscale or opacity."""
    from PIL import Image

    notes = []
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(f"{path}: an animated picture ({frames} frames); its first frame is read.")
    # Pillow looks for a PNG's EXIF after its pixels by decoding them all: only read it when
    # the header already holds it (an eXIf chunk after the pixels is rare).
    has_exif = im.format != "PNG" or "exif" in im.info
    orientation = im.getexif().get(0x0112, 1) if has_exif else 1
    k = _shrink_factor(*im.size)
    if im.format == "JPEG" and k > 1:
        im.draft(im.mode if im.mode in ("L", "RGB") else None, (im.width // k, im.height // k))
        k = _shrink_factor(*im.size)  # what is left after decoding at 1/2, 1/4 or 1/8
    elif _decoded_bytes(im) > DECODE_BUDGET:
        if im.format not in VIPS_FORMATS:
            raise PictureTooLargeError(
                f"{path}: a {im.width}x{im.height} {im.format} takes {_decoded_bytes(im) // 2**20} MB to "
                f"decode, more than the {DECODE_BUDGET // 2**20} MB allowed; save it as PNG or JPEG "
                "(read at reduced size) or scale it down."
            )
        im, k = _vips_reduced(source, k), 1
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
                return _decode(im, path, source)
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
