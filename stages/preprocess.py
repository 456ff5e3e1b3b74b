"""Stage 2, preprocess: data/raw/'s IDX files into data/processed/{train,val,test}.npz.

The split (seeded, stratified) and the format are mnist_classifier.dataset's.
"""

from __future__ import annotations

from mnist_classifier.catalogue import load_dataset
from mnist_classifier.cli import run_command, stage_paths
from mnist_classifier.config import preprocess_params, read_params
from mnist_classifier.dataset import preprocess


def main() -> None:
    args = stage_paths(__doc__, "catalogue", "raw", "out")
    params = preprocess_params(read_params())
    dataset = load_dataset(args.catalogue, params.dataset)
    preprocess(dataset, args.raw, args.out, params.val_fraction, params.seed)


if __name__ == "__main__":
    run_command("preprocess", main)
