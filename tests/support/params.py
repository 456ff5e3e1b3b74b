"""The project's params as a test needs them: composed from conf/ as `dvc exp run` does,
changed key by key, written into a project copy's conf/ and params.yaml.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.support.paths import ROOT

if TYPE_CHECKING:
    from mnist_classifier.config import TrainParams


def merge(base: dict, changes: dict) -> dict:
    """base with changes applied; nested mappings are merged key by key, not replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def set_params(params_file: Path, **values: object) -> None:
    """Change params.yaml in place (what `dvc repro` and the stages read); nested keys merge."""
    data = yaml.safe_load(params_file.read_text())
    params_file.write_text(yaml.safe_dump(merge(data, values), sort_keys=False))


@cache
def _composed(model: str) -> str:
    from mnist_classifier.composition import compose

    return yaml.safe_dump(compose([f"model={model}"], ROOT / "conf"), sort_keys=False)


def default_params(model: str = "mlp") -> dict[str, Any]:
    """The project's params with `model` chosen, composed from conf/ as `dvc exp run` does
    (a fresh copy each call, so a test may change it)."""
    return yaml.safe_load(_composed(model))


def make_train_params(model: str = "mlp", **changes: object) -> TrainParams:
    """The train stage's params for `model`, with short training (2 epochs, batch 64) and
    `changes` merged in (nested blocks key by key: `cnn={"filters": [4]}`)."""
    from mnist_classifier.config import train_params

    return train_params(merge({**default_params(model), "epochs": 2, "batch_size": 64}, changes))


def configure(proj: Path, **files: dict) -> None:
    """Change the conf/ files of a project copy (`config={...}`, `mlp={...}`, `cnn={...}` for
    conf/config.yaml and conf/model/<name>.yaml), then compose params.yaml from them as
    `dvc exp run` would, so `dvc repro` and `dvc exp run` both see the change."""
    from mnist_classifier.composition import write_params

    for name, changes in files.items():
        path = proj / "conf" / ("config.yaml" if name == "config" else f"model/{name}.yaml")
        head = "# @package _global_\n" if name != "config" else ""
        data = yaml.safe_load(path.read_text())
        path.write_text(head + yaml.safe_dump(merge(data, changes), sort_keys=False))
    write_params(conf_dir=proj / "conf", path=proj / "params.yaml")
