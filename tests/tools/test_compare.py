"""`make compare`: grouping by everything but the seed, on experiment rows made here."""

from __future__ import annotations

import pytest

from mnist_classifier.errors import PipelineError
from tests.support.paths import ROOT


def _exp(rev: str, accuracy: float, loss: float, **params: object) -> dict:
    return {
        "rev": rev,
        "test.accuracy": accuracy,
        "test.loss": loss,
        **{"seed": 1, "epochs": 20, "learning_rate": 0.001, **params},
    }


def test_compare_groups_by_everything_but_the_seed_best_first() -> None:
    from mnist_classifier.compare import table

    rows = [
        _exp("workspace", 0.5, 9.0),  # the workspace repeats a commit: left out
        _exp("a", 0.90, 0.30, seed=1),
        _exp("b", 0.92, 0.20, seed=2),
        _exp("c", 0.94, 0.10, seed=3),
        _exp("d", 0.97, 0.05, seed=1, learning_rate=0.01),
        {"rev": "e", "test.accuracy": None, "test.loss": None, "seed": 4},  # queued: no metrics
    ]
    lines = table(rows, ["seed", "epochs", "learning_rate"]).splitlines()
    assert lines == [
        "| learning_rate | runs | seeds | test accuracy | test loss |",
        "|---|---|---|---|---|",
        "| 0.01 | 1 | 1 | 0.9700 (one run: no spread) | 0.0500 (one run: no spread) |",
        "| 0.001 | 3 | 1, 2, 3 | 0.9200 ± 0.0200 | 0.2000 ± 0.1000 |",
    ]


def test_compare_with_one_group_says_only_the_seed_varies_and_with_none_says_what_to_do() -> None:
    from mnist_classifier.compare import table
    from mnist_classifier.composition import flat_keys

    assert flat_keys({"a": 1, "plot": {"samples": 2, "x": {"y": 3}}}) == ["a", "plot.samples", "plot.x.y"]
    text = table([_exp("a", 0.9, 0.3, seed=1), _exp("b", 0.8, 0.5, seed=2)], ["seed", "epochs"])
    assert text.splitlines()[2] == "| 2 | 1, 2 | 0.8500 ± 0.0707 | 0.4000 ± 0.1414 |"
    assert text.endswith("All experiments share their params but the seed.")
    with pytest.raises(PipelineError, match="no experiments with test metrics yet"):
        table([_exp("workspace", 0.9, 0.3)], ["seed"])


def test_compare_shows_the_model_and_only_what_varies_within_a_model() -> None:
    """Keys that follow the model (each model's own epochs, its block) are not columns;
    a key the other model lacks shows as `-`, and runs of two models never share a group."""
    from mnist_classifier.compare import table

    mlp = {"model": "mlp", "epochs": 20, "mlp.dropout": 0.05}
    cnn = {"model": "cnn", "epochs": 30.0, "cnn.filters": "[16, 32]"}  # DVC's table gives 30.0
    rows = [
        _exp("a", 0.97, 0.09, seed=1, **mlp),
        _exp("b", 0.98, 0.08, seed=2, **mlp),
        _exp("c", 0.99, 0.02, seed=1, **cnn),
        _exp("d", 0.995, 0.01, seed=1, **{**cnn, "epochs": 40.0}),
    ]
    lines = table(rows, ["model", "seed", "epochs", "mlp.dropout", "cnn.filters"]).splitlines()
    assert lines[0] == "| model | epochs | runs | seeds | test accuracy | test loss |"
    assert [line.split(" | ")[:3] for line in lines[2:]] == [
        ["| cnn", "40", "1"],
        ["| cnn", "30", "1"],
        ["| mlp", "20", "2"],
    ]


def test_the_param_columns_are_every_model_s_keys() -> None:
    from mnist_classifier.composition import all_param_names

    names = all_param_names(ROOT / "conf")
    assert {"model", "seed", "epochs", "mlp.hidden_units", "cnn.filters", "plot.samples"} <= set(names)


def test_only_finished_runs_count_each_once_and_odd_cells_are_missing() -> None:
    """A failed, queued or running experiment shows the baseline's metrics (its copy carries
    the committed file): it must not count. Nor may a repeat of the same params and seed, a
    metric DVC shows as 'None' or '!', or the workspace (it repeats its commit)."""
    from mnist_classifier.compare import table

    rows = [
        {**_exp("workspace", 0.90, 0.30, seed=1), "typ": "baseline"},
        {**_exp("main", 0.90, 0.30, seed=1), "typ": "baseline"},
        {**_exp("a", 0.90, 0.30, seed=1), "State": "Success"},  # the baseline again: one run
        {**_exp("b", 0.92, 0.20, seed=2), "State": "Success"},
        {**_exp("c", 0.90, 0.30, seed=3), "State": "Failed"},
        {**_exp("d", 0.90, 0.30, seed=4), "State": "Queued"},
        {**_exp("e", 0.90, 0.30, seed=5), "State": "Running"},
        _exp("f", "None", 0.30, seed=6),
        _exp("g", 0.5, "!", seed=8),
        _exp("h", 0.94, 0.10, seed=20240101),
    ]
    lines = table(rows, ["seed", "epochs", "learning_rate"]).splitlines()
    assert lines[2] == "| 3 | 1, 2, 20240101 | 0.9200 ± 0.0200 | 0.2000 ± 0.1000 |"


def test_with_the_workspace_it_stands_for_its_commit() -> None:
    """The report in CI: the run just made (workspace) replaces the committed metrics."""
    from mnist_classifier.compare import table

    rows = [
        {**_exp("workspace", 0.95, 0.15), "typ": "baseline"},
        {**_exp("main", 0.90, 0.30), "typ": "baseline"},
    ]
    assert (
        table(rows, ["seed", "epochs"], workspace=True)
        .splitlines()[2]
        .startswith("| 1 | 1 | 0.9500 (one run")
    )
    assert table(rows, ["seed", "epochs"]).splitlines()[2].startswith("| 1 | 1 | 0.9000 (one run")


def test_the_spread_figure_holds_its_longest_group_label_whole(tmp_path) -> None:
    from PIL import Image

    from mnist_classifier.figures import spread_figure

    long = "model=mlp, learning_rate=0.00123, mlp.hidden_units=[512, 512, 512], optimizer=rmsprop, epochs=30"
    spread_figure(tmp_path / "c.png", {long: [0.98, 0.981], "model=cnn": [0.996, 0.9963]}, "test accuracy")
    with Image.open(tmp_path / "c.png") as image:  # at 10 pt a character is about 6 pixels wide
        assert image.width > 6 * len(long) + 300, image.size  # the label, then the plot beside it
