"""Where things are: the repository's root, the project files a copy takes, and every
pipeline path from dvc.yaml's `vars` (written once there, read here).
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


PROJECT_FILES = (
    "stages",
    "mnist_classifier",
    "conf",
    "dvc.yaml",
    "params.yaml",
    "datasets.yaml",
    "tune.yaml",
    "data/own/README.md",  # data/own/, the own sets' folder: a dep of preprocess
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
)


DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())


VARS = {k: v for entry in DVC_YAML["vars"] for k, v in entry.items()}


PROCESSED, MODEL = Path(VARS["processed"]), Path(VARS["model_file"])


TINY_DATASET = "tiny"  # the synthetic dataset of tiny_project() and the stage-level tests


RAW_ROOT = Path(VARS["raw"])  # fetch writes each dataset's files to RAW_ROOT/<dataset>


RAW = RAW_ROOT / TINY_DATASET


TRAIN_LOG, METRICS = Path(VARS["train_log"]), Path(VARS["metrics"])


PREDICTIONS, PROBS, FIGURES = Path(VARS["predictions"]), Path(VARS["probs"]), Path(VARS["figures"])


OUTPUTS = {
    "fetch": [RAW],
    "preprocess": [PROCESSED],
    "train": [MODEL, TRAIN_LOG],
    "evaluate": [METRICS, PREDICTIONS, PROBS],
    "plot": [FIGURES],
}
