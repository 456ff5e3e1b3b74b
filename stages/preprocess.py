"""Stage 2, preprocess: data/raw/'s IDX files into data/processed/{train,val,test}.npz,
and the own sets the `mix` param names (data/own/) into the training set and own_test.npz.

The split (seeded, stratified) and the format are mnist_classifier.dataset's.
"""

from __future__ import annotations

from mnist_classifier.catalogue import load_dataset, load_own_set
from mnist_classifier.cli import run_program, stage_paths
from mnist_classifier.config import preprocess_params, read_params
from mnist_classifier.dataset import preprocess


def main() -> None:
    args = stage_paths(__doc__, "catalogue", "raw", "own", "out")
    params = preprocess_params(read_params())
    dataset = load_dataset(args.catalogue, params.dataset)
    own = tuple(load_own_set(args.catalogue, name, args.own) for name in params.mix.sets)
    preprocess(dataset, args.raw, args.out, params.val_fraction, params.seed, own, params.mix)


if __name__ == "__main__":
    run_program("preprocess", main)
