"""Your own digits as a DVC dataset (issue 29): a folder of labelled pictures tracked with
`dvc add`, mixed into training by the `mix` param, scored apart; the real `dvc` and `git`
on a copy of the tiny baseline (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.commands import dvc, git, ran
from tests.support.paths import METRICS
from tests.support.pictures import own_folder
from tests.support.projects import baseline_copy

pytestmark = pytest.mark.slow  # real DVC runs and training subprocesses

MIX = ("-S", "mix.sets=[mine]", "-S", "mix.weight=2")


def test_pictures_added_with_dvc_add_rerun_from_preprocess_and_are_scored_apart(
    tmp_path: Path, tiny_baseline: Path
) -> None:
    proj, env = baseline_copy(tiny_baseline, tmp_path / "copy", TRAIN_THREADS="1")
    catalogue = proj / "datasets.yaml"
    entries = yaml.safe_load(catalogue.read_text())
    entries["own"]["mine"] = {"kind": "folder", "path": "data/own/mine"}
    catalogue.write_text(yaml.safe_dump(entries, sort_keys=False))
    own_folder(proj / "data" / "own" / "mine", per_class=3)
    dvc(proj, "add", "data/own/mine", env=env)
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "my digits")
    assert "data/own/mine/" not in git(proj, "ls-files")  # DVC keeps the pictures, git the .dvc file

    # Not mixed in, a new set changes no model: preprocess reruns (its folder changed) and
    # writes what it wrote before, so nothing after it runs.
    assert ran(dvc(proj, "repro", env=env).stdout) == {"preprocess"}

    # Twenty more pictures, `dvc add` again, and the set mixed in: from preprocess on (never
    # fetch), with the set's own score beside the test set's.
    own_folder(proj / "data" / "own" / "mine", per_class=2, seed=1000)
    dvc(proj, "add", "data/own/mine", env=env)
    out = dvc(proj, "exp", "run", *MIX, env=env).stdout
    assert ran(out) == {"preprocess", "train", "evaluate", "plot"}, out
    assert "Stage 'fetch' didn't change" in out
    assert "own set mine: 40 to train on, 10 to test with" in out, out  # one of each class held out
    scores = json.loads((proj / METRICS).read_text())["own"]["mine"]
    assert scores["n"] == 10 and 0 <= scores["accuracy"] <= 1
    diff = json.loads(dvc(proj, "metrics", "diff", "--all", "--json", env=env).stdout)[str(METRICS)]
    assert {"test.accuracy", "own.mine.accuracy", "own.mine.loss"} <= set(diff), diff
