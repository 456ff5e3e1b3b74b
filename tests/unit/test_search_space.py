"""tune.yaml: the search space a user edits, checked before any study opens or anything trains."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

from mnist_classifier.errors import PipelineError
from mnist_classifier.tuning.search_space import load_settings, override
from tests.support.commands import run
from tests.support.paths import ROOT
from tests.support.projects import copy_project
from tests.support.servers import free_port

SHIPPED = yaml.safe_load((ROOT / "tune.yaml").read_text())


def written(tmp_path: Path, change: dict | None = None, space: dict | None = None) -> Path:
    """The shipped tune.yaml with top-level settings changed and/or the MLP's space replaced."""
    settings = copy.deepcopy(SHIPPED)
    settings.update(change or {})
    if space is not None:
        settings["space"]["mlp"] = space
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def test_the_shipped_space_covers_both_models_and_every_bound_passes_the_train_stage(tmp_path: Path) -> None:
    mlp = load_settings(ROOT / "tune.yaml", ROOT / "conf")
    assert [p.key for p in mlp.params] == list(SHIPPED["space"]["mlp"])
    assert mlp.params[0].key == "learning_rate" and mlp.params[0].value.log  # a rate spans decades
    cnn = load_settings(written(tmp_path, {"model": "cnn"}), ROOT / "conf")
    assert {p.key for p in cnn.params} >= {"cnn.filters", "cnn.dense_units", "cnn.dropout"}


BAD = [
    # (what is wrong, the space or settings that has it, words the one line must hold)
    (
        "an unknown param",
        {"space": {"mlp.width": {"low": 1, "high": 4}}},
        "`space.mlp.mlp.width` is not a param",
    ),
    ("the other model's param", {"space": {"cnn.dropout": {"low": 0.1, "high": 0.3}}}, "is not a param"),
    (
        "a param that moves the validation set",
        {"space": {"val_fraction": {"low": 0.1, "high": 0.2}}},
        "not a param",
    ),
    ("an empty range", {"space": {"learning_rate": {"low": 0.01, "high": 0.001}}}, "empty range"),
    ("a seed trials would push past 2**32", {"settings": {"seed": 2**31}}, "an integer from 0 to 2147483647"),
    ("a one-point range", {"space": {"epochs": {"low": 5, "high": 5}}}, "empty range"),
    ("no choices", {"space": {"optimizer": {"choices": []}}}, "non-empty list"),
    ("a float for an integer param", {"space": {"epochs": {"low": 1.5, "high": 4}}}, "must be an integer"),
    ("a word for a number", {"space": {"learning_rate": {"low": "fast", "high": 0.1}}}, "must be a number"),
    ("a choice of the wrong type", {"space": {"batch_size": {"choices": [64, "128"]}}}, "must be an integer"),
    ("a range over words", {"space": {"optimizer": {"low": 1, "high": 2}}}, "give choices"),
    ("a log range from 0", {"space": {"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}}, "low > 0"),
    ("a list param as a range", {"space": {"mlp.hidden_units": {"low": 1, "high": 3}}}, "is a list param"),
    (
        "a bound the stage refuses",
        {"space": {"mlp.dropout": {"low": 0.1, "high": 1.0}}},
        "train stage refuses",
    ),
    (
        "a choice the stage refuses",
        {"space": {"optimizer": {"choices": ["adam", "lion"]}}},
        "train stage refuses",
    ),
    ("an unknown setting", {"settings": {"budget": 3}}, "`budget` is not a setting"),
    ("a study name git cannot hold", {"settings": {"study": "my study"}}, "`study`"),
    ("an unknown model", {"settings": {"model": "resnet"}}, "`model`"),
    ("no space for the model", {"space": {}}, "missing or empty"),
]


@pytest.mark.parametrize(("case", "bad", "needle"), BAD, ids=[case for case, _, _ in BAD])
def test_a_bad_search_space_is_one_clear_line(tmp_path: Path, case: str, bad: dict, needle: str) -> None:
    path = written(tmp_path, bad.get("settings"), bad.get("space"))
    with pytest.raises(PipelineError) as caught:
        load_settings(path, ROOT / "conf")
    message = str(caught.value)
    assert needle in message and "\n" not in message, message
    assert str(path) in message, message  # names the file to fix


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("learning_rate", 0.00123, "learning_rate=0.00123"),
        ("mlp.hidden_units", [256, 256], "mlp.hidden_units=[256,256]"),
        ("cnn.augment", False, "cnn.augment=false"),
        ("optimizer", "nadam", "optimizer=nadam"),
        ("epochs", 15, "epochs=15"),
    ],
)
def test_overrides_are_written_as_dvc_exp_run_s_reads_them(key: str, value: object, text: str) -> None:
    assert override(key, value) == text


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("tune-cli") / "project")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--space", "{bad}"], 1, "empty range"),
        (
            ["--storage", "postgresql://postgres@127.0.0.1:{port}/optuna"],
            1,
            "cannot open the study's storage",
        ),
        (["--storage", "{tmp}/no/such/dir/journal.log"], 1, "its directory does not exist"),
        (["--storage", "{tmp}"], 1, "is a directory; name a file in it"),
        (["--study", "a b"], 1, "--study 'a b'"),
        (["--jobs", "0"], 2, "--jobs must be at least 1"),  # argparse's usage error
    ],
    ids=["bad space", "database down", "journal dir missing", "a directory", "bad study name", "no workers"],
)
def test_tune_refuses_bad_input_in_one_line_before_anything_trains(
    project: Path, tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    bad = written(tmp_path, space={"learning_rate": {"low": 0.1, "high": 0.01}})
    args = [a.format(bad=bad, port=free_port(), tmp=tmp_path) for a in args]
    proc = run(project, sys.executable, "-m", "mnist_classifier.tuning", *args, check=False, timeout=120)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert needle in lines[-1] and "Traceback" not in proc.stderr, proc.stderr
    assert not (project / ".tune").exists() and "Running stage" not in proc.stdout + proc.stderr


def drawn(settings_path: Path, trials: int, storage: object = None) -> list[dict]:
    """`trials` trials drawn by the search's own draw(), each told a made-up score (TPE then
    models a history, not only its random start)."""
    import optuna

    from mnist_classifier.tuning.trials import draw

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = load_settings(settings_path, ROOT / "conf")
    study = optuna.create_study(direction="maximize", storage=storage, study_name="s", load_if_exists=True)
    out = []
    for _ in range(trials):
        trial, values = draw(study, settings)
        study.tell(trial, trial.number % 7 / 7)
        out.append(values)
    return out


SHORT_SPACE = {
    "learning_rate": {"low": 1e-6, "high": 3e-4, "log": True},  # exponent form, where it broke
    "mlp.dropout": {"low": 0.0, "high": 0.5},
    "epochs": {"low": 1, "high": 3},
}


def test_drawn_floats_come_back_from_dvcs_yaml_unchanged_and_inside_their_bounds(tmp_path: Path) -> None:
    # What `dvc exp run -S` does to a value: written to params.yaml, read back by DVC's
    # round-trip YAML, written into dvc.lock, read by `dvc status`. A value that changes on the
    # way makes the experiment look modified forever.
    from dvc.utils.serialize._yaml import dumps_yaml, parse_yaml, parse_yaml_for_update

    values = drawn(written(tmp_path, {"startup_trials": 5}, SHORT_SPACE), 60)
    rates = [v["learning_rate"] for v in values]
    assert len(set(rates)) == len(rates)  # drawn, not stuck
    for value in values:
        lock = dumps_yaml(parse_yaml_for_update(dumps_yaml(value), "params.yaml"))
        assert parse_yaml(lock, "dvc.lock") == value
        assert 1e-6 <= value["learning_rate"] <= 3e-4 and 0.0 <= value["mlp.dropout"] <= 0.5


def test_a_trials_params_depend_on_its_number_not_on_which_machine_asks(tmp_path: Path) -> None:
    # Machines taking turns on one shared study draw the trials one machine alone draws: the
    # seed is seed + the trial's number. (That two machines asking at the same moment get
    # different trials is the two-machine test's, in tests/pipeline/test_tuning.py.)
    import optuna

    path = written(tmp_path, {"startup_trials": 10}, SHORT_SPACE)
    alone = drawn(path, 4)
    backend = optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log"))
    journal = optuna.storages.JournalStorage(backend)
    shared = [drawn(path, 1, journal)[0] for _ in range(4)]  # a new Study object, as a second machine
    assert shared == alone
    assert len({v["learning_rate"] for v in alone}) == 4
