"""Two models, one pipeline: params follow the chosen model (DVC's Hydra composition of conf/).

The real `dvc exp run` on a tiny project: `-S model=cnn` trains the CNN, `-S epochs=N` is the
chosen model's epochs, and the other model's keys can never rerun a stage.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support.commands import dvc, output, ran
from tests.support.paths import MODEL, ROOT, TRAIN_LOG
from tests.support.projects import baseline_copy

pytestmark = pytest.mark.slow  # real DVC runs and training subprocesses


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_baseline: Path) -> tuple[Path, dict[str, str]]:
    """A tiny project with its baseline run committed (dvc.lock in git)."""
    return baseline_copy(tiny_baseline, tmp_path_factory.mktemp("models") / "copy")


def trained(proj: Path) -> tuple[str, int]:
    """What the workspace's model is, read back from the files the train stage wrote:
    (the Keras model's name, the number of epochs dvclive logged)."""
    import keras

    name = keras.models.load_model(proj / MODEL, compile=False).name
    epochs = len((proj / TRAIN_LOG / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()) - 1
    return name, epochs


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["cnn.dropout=0.5"], "cnn.dropout"),  # the MLP is chosen
        (["model=cnn", "mlp.dropout=0.1"], "mlp.dropout"),
        (["cnn.filters=[8]"], "cnn.filters"),
    ],
)
def test_a_key_of_the_model_not_chosen_is_refused_and_runs_nothing(
    project: tuple[Path, dict[str, str]], overrides: list[str], key: str
) -> None:
    proj, env = project
    before = (proj / "params.yaml").read_text()
    proc = dvc(proj, "exp", "run", *(a for o in overrides for a in ("-S", o)), env=env, check=False)
    out = output(proc)
    assert proc.returncode != 0, out
    assert f"Could not override '{key}'" in out, out  # DVC's own line, from Hydra
    assert ran(out) == set(), out
    assert (proj / "params.yaml").read_text() == before


def test_changing_the_model_not_chosen_in_conf_reruns_nothing(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    cnn = proj / "conf" / "model" / "cnn.yaml"
    saved = cnn.read_text()
    try:
        cnn.write_text(saved.replace("dropout: 0.25", "dropout: 0.4"))
        assert cnn.read_text() != saved
        out = output(dvc(proj, "exp", "run", env=env))
        assert ran(out) == set(), out
        assert "cnn" not in yaml.safe_load((proj / "params.yaml").read_text())
    finally:
        cnn.write_text(saved)


def test_model_cnn_trains_the_cnn_with_its_own_epochs(
    project: tuple[Path, dict[str, str]],
) -> None:
    proj, env = project
    cnn_epochs = yaml.safe_load((proj / "conf" / "model" / "cnn.yaml").read_text())["epochs"]
    out = output(dvc(proj, "exp", "run", "-S", "model=cnn", env=env))
    assert ran(out) == {"train", "evaluate", "plot"}, out  # the processed data stays
    assert trained(proj) == ("mnist_cnn", cnn_epochs)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    assert params["model"] == "cnn" and "cnn" in params and "mlp" not in params
    # `-S epochs=N` then overriding the CNN's own: the README test below trains it so.
    table = json.dumps(json.loads(output(dvc(proj, "exp", "show", "--json", env=env))))
    assert '"model": "cnn"' in table and '"model": "mlp"' in table


def test_the_readme_way_of_making_the_cnn_the_default_makes_epochs_the_cnn_s(
    project: tuple[Path, dict[str, str]],
) -> None:
    """Followed as the README writes it: one line of conf/config.yaml, then `-S epochs=N`."""
    proj, env = project
    readme = " ".join((ROOT / "README.md").read_text().split())
    old, new = "- model: mlp", "- model: cnn"
    assert f"change `{old}` to `{new}`" in readme
    config = proj / "conf" / "config.yaml"
    text = config.read_text()
    assert len(re.findall(rf"^\s*{re.escape(old)}\b", text, re.M)) == 1
    config.write_text(text.replace(old, new))
    out = output(dvc(proj, "exp", "run", "-S", "epochs=2", env=env))
    assert ran(out) == {"train", "evaluate", "plot"}, out
    assert trained(proj) == ("mnist_cnn", 2)
