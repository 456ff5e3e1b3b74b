"""The demo own set: scikit-learn's bundled UCI digits, rendered as photos into a folder set.

No download: the 1,797 digits (8x8 counts of ink, 0-16, by 13 writers who are not MNIST's)
ship inside scikit-learn's wheel. Each is drawn as a photo of dark ink on uneven, noisy
paper, which predict's normaliser then reads like any other picture.

The split is by writer, as far as the data allows: scikit-learn ships no writer ids, but
its file keeps each writer's digits together (two digits of one class 1-29 places apart
differ by 28.5 in pixel distance, 300 or more apart by 36.6), so the last quarter, cut in
one piece, holds writers the first three quarters mostly lack (at most the one writer at
the cut is in both). Usage: `python -m mnist_classifier.demo_digits [--out data/own/uci_digits]`
(or `make demo-digits`), then `dvc add` the folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mnist_classifier.cli import run_program
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import atomic_output

OUT = Path("data/own/uci_digits")
TEST_SHARE = 0.25  # the file's last quarter, in one piece: held-out writers
SCALE = 10  # 8x8 -> 80x80 of ink
MARGIN = 20  # paper round the digit
INK_CUT, EDGE = 0.4, 0.05  # coverage that is ink, and how soft the stroke's edge is


def render(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 array of ink counts (0-16) as a photo: uint8, dark ink on lit, grainy paper.

    The counts are how much of each 4x4 block of a binary 32x32 bitmap was ink: upsampled
    smoothly and cut at half, they give back a pen's solid strokes (with a soft edge), not
    the grey haze that the counts themselves would draw."""
    from PIL import Image, ImageFilter

    coverage = Image.fromarray((counts / 16 * 255).astype(np.uint8))
    coverage = coverage.resize((8 * SCALE, 8 * SCALE), Image.Resampling.BICUBIC).filter(
        ImageFilter.GaussianBlur(2)
    )
    stroke = 1 / (1 + np.exp(-(np.asarray(coverage, dtype=np.float32) / 255 - INK_CUT) / EDGE))
    side = 8 * SCALE + 2 * MARGIN
    field = np.zeros((side, side), dtype=np.float32)
    field[MARGIN:-MARGIN, MARGIN:-MARGIN] = stroke
    light = np.linspace(0.95, 0.75, side)[None, :] * rng.uniform(0.9, 1.0)  # a lamp to one side
    photo = light * (1 - 0.8 * field) + rng.normal(0, 0.03, (side, side))
    return (np.clip(photo, 0, 1) * 255).round().astype(np.uint8)


def write_demo(out: Path, count: int | None = None, seed: int = 0) -> tuple[int, int]:
    """Render the digits (the first `count`; all by default) into out/{train,test}/<label>/
    uci-NNNN.png: (train, test) counts. The folder appears whole or not at all."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images[:count], digits.target[:count]
    rng = np.random.default_rng(seed)
    first_test = int(round(len(labels) * (1 - TEST_SHARE)))
    with atomic_output(out, directory=True) as tmp:
        for i, (counts, label) in enumerate(zip(images, labels)):
            split = "train" if i < first_test else "test"
            folder = tmp / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render(counts, rng)).save(folder / f"uci-{i:04d}.png", optimize=False)
    return first_test, len(labels) - first_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"the set's folder (default {OUT})")
    parser.add_argument("--force", action="store_true", help="replace the folder if it exists")
    args = parser.parse_args()
    if args.out.exists() and not args.force:
        raise PipelineError(f"{args.out} exists; add --force to render it again (same pictures, same seed).")
    train, test = write_demo(args.out)
    print(
        f"demo-digits: {train} training and {test} test pictures (held-out writers) in {args.out}; "
        f"next: dvc add {args.out} && git add {args.out.parent} && git commit -m 'UCI digits', then "
        "dvc exp run -S 'mix.sets=[uci_digits]'"
    )


if __name__ == "__main__":
    run_program("demo-digits", main)
