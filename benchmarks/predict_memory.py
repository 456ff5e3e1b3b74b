"""Peak memory of the predict command on large pictures, as a Markdown table.

    python benchmarks/predict_memory.py [--model models/model.keras]

Each picture is made here (a digit on white, PNG or JPEG at the sizes phones and scanners
make) and read by `python -m mnist_classifier.predict` in its own process; the table gives
that process's peak resident memory, with an empty picture list's (the model alone) for
scale. Targets: any picture under Pillow's bomb limit at most 600 MB (issue 28; PNG and TIFF
are read by libvips, a strip at a time), a 48-megapixel JPEG at most 450 MB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
PEAK = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))\n"
)
CASES = [  # name, size, format, mode, target MB
    ("RGBA PNG, 9000x9000 (81 Mpx)", (9000, 9000), "PNG", "RGBA", 600),
    ("RGB TIFF, 9000x9000 (81 Mpx)", (9000, 9000), "TIFF", "RGB", 600),
    ("RGB JPEG, 8000x6000 (48 Mpx)", (8000, 6000), "JPEG", "RGB", 450),
    ("16-bit PNG, 6000x4000 (24 Mpx)", (6000, 4000), "PNG", "I;16", 600),
    ("RGB JPEG, 4032x3024 (12 Mpx)", (4032, 3024), "JPEG", "RGB", None),
]


def picture(path: Path, size: tuple[int, int], fmt: str, mode: str) -> Path:
    """A thick dark 7 on white paper, filling the middle of the picture."""
    w, h = size
    grey = Image.new("L", size, 235)
    ImageDraw.Draw(grey).line(
        [(w * 0.3, h * 0.25), (w * 0.7, h * 0.25), (w * 0.45, h * 0.8)], fill=20, width=max(3, w // 40)
    )
    if mode == "I;16":
        image = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    else:
        image = grey.convert(mode)
    options = {"PNG": {"compress_level": 1}, "JPEG": {"quality": 85}}.get(fmt, {})
    image.save(path, format=fmt, **options)
    return path


def peak_mb(*args: str) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "mnist_classifier.predict", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    kib, code = out.stdout.split()
    return int(kib) / 1024, int(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "model.keras"))
    args = parser.parse_args()
    print(f"Peak RSS of the predict command, {datetime.now(UTC):%Y-%m-%d}, model {args.model}\n")
    print("| picture | file MB | peak RSS MB | target MB | exit |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        # The model alone: a tiny picture, so the command loads the model and answers.
        small = picture(Path(tmp) / "small.png", (200, 200), "PNG", "L")
        mb, code = peak_mb("--model", args.model, str(small))
        print(f"| 200x200 PNG (the model alone, for scale) | 0.0 | {mb:.0f} | - | {code} |")
        for name, size, fmt, mode, target in CASES:
            path = picture(Path(tmp) / f"big.{fmt.lower()}", size, fmt, mode)
            mb, code = peak_mb("--model", args.model, str(path))
            print(f"| {name} | {path.stat().st_size / 1e6:.1f} | {mb:.0f} | {target or '-'} | {code} |")
            path.unlink()


if __name__ == "__main__":
    main()
