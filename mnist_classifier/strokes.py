"""Which ink is the digit, and how thick it is drawn: what people's pictures need between
their ink and MNIST's form that MNIST's own scans did not.

- Printed structure is not ink. Ruled and squared paper print long straight thin lines; read
  as strokes, they shrink the digit to fit the whole ruling and cross it with bars. A printed
  line is what survives an opening with a line 60% of the picture long (SciPy's 1-D minimum
  and maximum filters: linear time whatever the length), tolerating a photo about 1 degree
  askew, and is thin (2% of the picture); it counts as printed when it crosses nearly the
  whole picture, or when three or more run parallel (a digit's own bar is neither). Where a
  stroke crosses, touches or runs along it, the ink is kept. A single flat mark below all the
  others is an underline.
- Several marks side by side are a number: connected marks are one digit when they share
  half the narrower one's columns, or any columns while one lies wholly above the other (a
  1 broken in two); the digits are read left to right; marks far lower than the tallest are
  specks. Touching digits
  are one mark, and so one digit: splitting them is out of scope.
- Stroke width: measured as ink mass per skeleton pixel with the digit 80 pixels tall, MNIST's
  test digits are 2.34 pixels wide in their 20-pixel box (1.24-4.65 for 98% of them). A
  2-pixel pen on a 430-pixel digit comes out at 0.1, a faint trace the model barely sees. A
  digit under 1.0 is redrawn along its skeleton at 2.34; so is one over 7.0 (three times
  MNIST's width). Between, the model reads strokes as drawn: a marker twice MNIST's width
  read 47 of 50 either way (benchmarks/picture_kinds.py), and redrawing flips with noise near
  the bounds, so only the extremes are touched. The skeleton is scikit-image's (SciPy has none;
  OpenCV's wheel is several times the size for the same thinning).
"""

from __future__ import annotations

import numpy as np

BOX = 20  # the box MNIST scales a digit's longer side to
MNIST_STROKE = 2.34  # median stroke width of MNIST's test digits in that box, by stroke_width()
STROKE_BAND = (1.0, 7.0)  # widths read as drawn; MNIST's 1st-99th percentile is 1.24-4.65
LINE_SPAN = 0.6  # a printed line is at least this share of the picture long
LINE_CROSSES = 0.9  # a line this long crosses the picture: printed, even alone
LINE_FAMILY = 3  # this many long parallel lines are a ruling
LINE_INK = 0.15  # a line's faint anti-aliased edges are line too
LINE_THICK = 0.02  # a printed line is at most this share of the picture thick (3 pixels at least)
TILT = 2  # pixels a line may drift sideways over its length (a photo a little askew)
SPECK = 0.02  # a mark smaller than this share of the largest is a speck
SHORT = 0.4  # a group of marks lower than this share of the tallest is no digit
OVERLAP = 0.5  # marks sharing this share of the narrower one's columns are one digit
FLAT = 0.25  # an underline is at most this high for its width
WORK = 80  # stroke width is measured and redrawn with the digit this large: 4x the box
SKELETON = 0.3  # at WORK scale, ink above this share of the brightest is skeletonised


def _opening(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Pixels in straight runs of at least `length` along `axis`: an opening with a line."""
    from scipy import ndimage

    length |= 1  # odd: centred
    m = mask.astype(np.uint8)
    eroded = ndimage.minimum_filter1d(m, length, axis=axis, mode="constant", cval=0)
    return ndimage.maximum_filter1d(eroded, length, axis=axis, mode="constant", cval=0).astype(bool)


def _run_lengths(mask: np.ndarray, axis: int) -> np.ndarray:
    """For each pixel of mask, the length of the straight run of mask along `axis` it is in."""
    from scipy import ndimage

    structure = np.zeros((3, 3), bool)
    structure[:, 1] = True
    labels, _ = ndimage.label(mask, structure=structure if axis == 0 else structure.T)
    return np.bincount(labels.ravel())[labels] * mask


def without_printed_lines(ink: np.ndarray) -> np.ndarray:
    """The ink (light on dark, 0-1) with ruled and grid lines removed where nothing else is
    drawn: across a line, a pixel whose run of ink is no longer than the line is thick is the
    line's; where a stroke crosses, touches or runs along it, the run is longer and is kept."""
    from scipy import ndimage

    kept = ink.copy()
    for axis in (1, 0):  # along the rows: horizontal lines; along the columns: vertical ones
        across = 1 - axis
        side = ink.shape[axis]
        loose = kept > LINE_INK
        wide = ndimage.maximum_filter1d(loose, 2 * TILT + 1, axis=across)  # tolerate a tilt
        labels, n = ndimage.label(_opening(wide, int(LINE_SPAN * side), axis) & loose, np.ones((3, 3), bool))
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        spans = {i + 1: s[axis].stop - s[axis].start for i, s in enumerate(ndimage.find_objects(labels))}
        thin = max(LINE_THICK * ink.shape[across], 3)
        found = [i for i, span in spans.items() if span >= LINE_SPAN * side and areas[i] / span <= thin]
        if len(found) < LINE_FAMILY and not any(spans[i] >= LINE_CROSSES * side for i in found):
            continue  # at most two long strokes: the digit's own
        lines = np.isin(labels, found)
        runs = _run_lengths(loose, across)
        thick = float(np.median(runs[lines]))  # most of a line's length has nothing else on it
        stroke = loose & (runs > thick + 2)
        line_only = lines & ~stroke
        kept[ndimage.maximum_filter1d(line_only, 3, axis=across) & ~stroke] = 0  # with its fringe
    return kept


def digit_masks(ink: np.ndarray) -> list[np.ndarray]:
    """Where each digit in thresholded ink lies, left to right: one mask per digit, of its own
    marks; an underline and specks belong to none. Empty when there is no ink."""
    from scipy import ndimage

    labels, n = ndimage.label(ink > 0, structure=np.ones((3, 3), bool))
    if not n:
        return []
    boxes = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    marks = [i for i in range(n) if areas[i] >= SPECK * areas.max()]
    underline = _underline(marks, boxes)
    marks = [i for i in marks if i != underline]
    groups: list[list[int]] = []
    for i in sorted(marks, key=lambda i: boxes[i][1].start):
        for group in groups:
            others = [boxes[j] for j in group]
            columns, rows = _shared(boxes[i], others, 1), _shared(boxes[i], others, 0)
            if columns >= OVERLAP or (columns > 0 and rows <= 0):  # beside, or stacked: one digit
                group.append(i)
                break
        else:
            groups.append([i])
    tallest = max(_extent([boxes[j] for j in g], 0) for g in groups)
    return [
        np.isin(labels, [j + 1 for j in group])
        for group in groups
        if _extent([boxes[j] for j in group], 0) >= SHORT * tallest
    ]


def _extent(boxes: list[tuple[slice, slice]], axis: int) -> int:
    return max(b[axis].stop for b in boxes) - min(b[axis].start for b in boxes)


def _shared(box: tuple[slice, slice], group: list[tuple[slice, slice]], axis: int) -> float:
    """The share of the narrower of a mark and a group that their columns (axis 1) or rows
    (axis 0) have in common; negative for a gap between them."""
    start, stop = min(b[axis].start for b in group), max(b[axis].stop for b in group)
    shared = min(box[axis].stop, stop) - max(box[axis].start, start)
    return shared / min(box[axis].stop - box[axis].start, stop - start)


def _underline(marks: list[int], boxes: list[tuple[slice, slice]]) -> int | None:
    """The mark that underlines the others: flat, at least as wide as the widest other mark,
    and below all of them."""
    for i in marks:
        rows, cols = boxes[i]
        others = [boxes[j] for j in marks if j != i]
        if not others or rows.stop - rows.start > FLAT * (cols.stop - cols.start):
            continue
        widest = max(b[1].stop - b[1].start for b in others)
        if cols.stop - cols.start >= widest and rows.start >= max(b[0].stop for b in others) - 2:
            return i
    return None


def _at_work_scale(ink: np.ndarray) -> np.ndarray:
    """The digit's ink with its longer side WORK pixels (area means when shrinking)."""
    from PIL import Image

    scale = WORK / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, resample))


def _skeleton(small: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(small > SKELETON * small.max())


def stroke_width(ink: np.ndarray) -> float:
    """The digit's stroke width in MNIST's 20-pixel box: ink mass per skeleton pixel, at WORK
    scale (at full size, sensor noise on a stroke's edges grows skeleton spurs)."""
    small = _at_work_scale(ink)
    return float(small.sum()) / max(int(_skeleton(small).sum()), 1) * BOX / WORK


def with_mnist_stroke(ink: np.ndarray) -> np.ndarray:
    """The digit as it is when its strokes are about as wide as MNIST's; otherwise redrawn
    along its skeleton (at WORK scale) so that, scaled to the box, they are MNIST_STROKE wide.
    (Wearing a thick digit down evenly instead read fewer right: its closed loops stay shut.)"""
    from scipy import ndimage

    low, high = STROKE_BAND
    width = stroke_width(ink)
    if low <= width <= high:
        return ink
    small = _at_work_scale(ink)
    skeleton = _skeleton(small)
    rows, cols = np.flatnonzero(skeleton.any(1)), np.flatnonzero(skeleton.any(0))
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    # Drawn around the skeleton with a soft edge, a stroke is 2r + 1 wide and the digit grows
    # to extent + 2r + 1: solve 2r + 1 = MNIST_STROKE / BOX * (extent + 2r + 1) for r.
    radius = max(0.5, (MNIST_STROKE * (extent + 1) - BOX) / (2 * (BOX - MNIST_STROKE)))
    pad = int(np.ceil(radius)) + 1
    skeleton = np.pad(skeleton[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], pad)
    distance = ndimage.distance_transform_edt(~skeleton)
    return np.clip(radius + 0.5 - distance, 0, 1).astype(np.float32)
