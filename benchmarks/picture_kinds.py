"""How many pictures of each kind people write `mnist-predict` reads right, for one or more
checkouts of the code (before and after a change), with the same model and the same pictures.

    python benchmarks/picture_kinds.py --model models/model.keras --n 20 [--tree /path/to/old/checkout]

Pictures (made by tests/support/pictures.py) are of MNIST's own test digits, the last 2,000
(which no model of ours trains on): photos of the digit as it is (12x, dark on grey, noisy),
and the digit redrawn by a pen: 12 pixels wide on plain, ruled, squared and underlined paper,
2 pixels (thin), 90 pixels (thick, twice MNIST's width), and numbers of 2-4 digits. Each tree's
`mnist_classifier.predict --json` reads them; a number counts as right only when every digit
is. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pictures import WRITTEN_KINDS, photo_of, written  # noqa: E402


def mnist_test_digits(raw: Path) -> tuple[np.ndarray, np.ndarray]:
    from mnist_classifier.dataset import load_split

    x, y = load_split(raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz", 10)
    return x[-2000:], y[-2000:]


def make_pictures(folder: Path, n: int, seed: int) -> dict[str, list[tuple[Path, str]]]:
    x, y = mnist_test_digits(ROOT / "data" / "raw" / "mnist")
    rng = np.random.default_rng(seed)
    pictures: dict[str, list[tuple[Path, str]]] = {}
    for kind in ("photo", *WRITTEN_KINDS, "number"):
        pictures[kind] = []
        for i in range(n):
            picks = rng.choice(len(x), size=int(rng.integers(2, 5)) if kind == "number" else 1, replace=False)
            truth = "".join(str(y[j]) for j in picks)
            path = folder / f"{kind}-{i}-{truth}.png"
            picture = (
                photo_of(x[picks[0]], rng) if kind == "photo" else written(kind, [x[j] for j in picks], rng)
            )
            picture.save(path)
            pictures[kind].append((path, truth))
    return pictures


def read(tree: Path, model: Path, files: list[Path]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "mnist_classifier.predict", "--json", "--model", str(model), *map(str, files)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [r["predicted"] for r in json.loads(out.stdout)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "model.keras")
    parser.add_argument("--n", type=int, default=20, help="pictures per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tree", type=Path, action="append", help="a checkout to read with (default: this one)"
    )
    args = parser.parse_args()
    trees = args.tree or [ROOT]
    with tempfile.TemporaryDirectory() as tmp:
        pictures = make_pictures(Path(tmp), args.n, args.seed)
        files = [p for kind in pictures.values() for p, _ in kind]
        answers = {tree: dict(zip(files, read(tree, args.model.resolve(), files))) for tree in trees}
    print("| kind | " + " | ".join(str(t) for t in trees) + " |")
    print("|---|" + "---|" * len(trees))
    for kind, cases in pictures.items():
        cells = [f"{sum(answers[t][p] == truth for p, truth in cases)}/{len(cases)}" for t in trees]
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
