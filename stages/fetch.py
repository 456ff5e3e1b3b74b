"""Stage 1, fetch: the dataset's four IDX gzip files into data/raw/, each checked by SHA-256.

Sources: $DATA_MIRROR/<dataset>/ first (a directory or a base URL), then the catalogue's
mirrors (mnist_classifier.download). FETCH_TIMEOUT sets the seconds to wait for a mirror.
"""

from __future__ import annotations

import os

from mnist_classifier.catalogue import load_dataset
from mnist_classifier.cli import run_program, stage_paths
from mnist_classifier.config import fetch_params, read_params
from mnist_classifier.download import DEFAULT_TIMEOUT_S, fetch
from mnist_classifier.errors import PipelineError


def main() -> None:
    args = stage_paths(__doc__, "catalogue", "out")
    params = fetch_params(read_params())
    dataset = load_dataset(args.catalogue, params.dataset)
    try:
        timeout = float(os.environ.get("FETCH_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        raise PipelineError("FETCH_TIMEOUT must be a number of seconds, e.g. 30.") from None
    fetch(dataset, args.out, os.environ.get("DATA_MIRROR"), timeout)


if __name__ == "__main__":
    run_program("fetch", main)
