"""Where the pipeline keeps things: paths read from dvc.yaml's `vars`, where each one is
written once. The commands (predict, serve, make tune, make keep) look them up here, so
moving an output is one edit of dvc.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from mnist_classifier.errors import PipelineError

DVC_YAML = Path("dvc.yaml")


def pipeline_path(name: str) -> Path:
    """The path dvc.yaml's `vars` give `name` (`model_file`, `metrics`, `train_log`, ...)."""
    if not DVC_YAML.is_file():
        raise PipelineError(f"no {DVC_YAML} here: run this from the project's root.")
    for entry in yaml.safe_load(DVC_YAML.read_text(encoding="utf-8"))["vars"]:
        if name in entry:
            return Path(entry[name])
    raise PipelineError(f"{DVC_YAML}'s vars lack `{name}`")
