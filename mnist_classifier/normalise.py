"""Bring a picture of a handwritten digit into MNIST's form, the way MNIST itself was made.

MNIST's digits are light ink on black, cropped to the ink, scaled so the longer side is 20
pixels (aspect kept, anti-aliased), and placed in a 28x28 field by their centre of mass. A
photo or scan is dark ink on light paper, large, off-centre, unevenly lit and noisy; a model
fed it as it is sees nothing it was trained on. predict and serve read every picture with
`decoding.read_image`, then bring it here: `to_digits` (one digit, or a number's digits left
to right) or `to_mnist` (all of it as one digit). What people's pictures need beyond MNIST's
own recipe (printed lines, several digits, pens of any width) is mnist_classifier/strokes.py.
"""

from __future__ import annotations

import numpy as np

from mnist_classifier.decoding import Picture
from mnist_classifier.errors import PipelineError
from mnist_classifier.strokes import digit_masks, with_mnist_stroke, without_printed_lines

SIDE, BOX = 28, 20  # the field, and the box the digit's longer side is scaled to
PIXELS = SIDE * SIDE  # what the models take: the field, flattened
INK = 0.3  # after stretching to [0, 1], brighter than this is ink, the rest background
STROKE_WINDOW = 1 / 3  # of the shorter side: marks thinner than this are ink, wider ones light
DESK = 0.3  # "paper" darker than this share of the brightest paper is a desk: no ink there
SHEET = 0.3  # a dark border round a bright area at least this large: a sheet on a desk


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


def _ink(picture: Picture | np.ndarray, source: str) -> np.ndarray:
    """The picture's ink, light on dark in [0, 1]: printed lines removed, paper grain and
    JPEG noise (fainter than INK) set to 0."""
    ink = without_printed_lines(light_on_dark(picture))
    ink[ink < INK] = 0
    if not ink.any():
        raise PipelineError(f"{source}: no ink found: the picture looks blank.")
    return ink


def to_digits(picture: Picture | np.ndarray, source: str = "picture") -> list[np.ndarray]:
    """Each digit in the picture, left to right, as a 28x28 uint8 in MNIST's form: one for a
    picture of a digit, several for a number written side by side."""
    ink = _ink(picture, source)
    return [_field(with_mnist_stroke(_cropped(np.where(own, ink, 0)))) for own in digit_masks(ink)]


def to_mnist(picture: Picture | np.ndarray, source: str = "picture") -> np.ndarray:
    """All of the picture's marks (bar an underline and specks) as one 28x28 uint8 digit in
    MNIST's form, light on dark."""
    ink = _ink(picture, source)
    own = np.logical_or.reduce(digit_masks(ink))
    return _field(with_mnist_stroke(_cropped(np.where(own, ink, 0))))


def _cropped(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _field(ink: np.ndarray) -> np.ndarray:
    """A digit's ink, cropped, as a 28x28 uint8 (0-255, light on dark) in MNIST's form."""
    from PIL import Image

    ink = _cropped(ink)
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
