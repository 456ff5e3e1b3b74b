"""Reading params and the environment: the traps a hand-written file or a shell sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_classifier import backend, composition, config
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import load_yaml
from tests.helpers import ROOT, default_params


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-4", 1e-4),
        ("1E-4", 1e-4),
        ("2e3", 2000.0),
        ("-3.5e-2", -0.035),
        (".5e1", 5.0),
        ("0.001", 0.001),
        ("42", 42),
        ("1e4x", "1e4x"),
        ("'1e-4'", "1e-4"),
    ],
)
def test_numbers_read_as_yaml_1_2_and_dvc_read_them(tmp_path: Path, text: str, value: object) -> None:
    """PyYAML follows YAML 1.1, where `1e-4` is a string; DVC (YAML 1.2) reads a number."""
    path = tmp_path / "params.yaml"
    path.write_text(f"learning_rate: {text}\n")
    assert load_yaml(path) == {"learning_rate": value}
    assert type(load_yaml(path)["learning_rate"]) is type(value)


def test_a_hand_written_learning_rate_in_e_notation_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    assert "learning_rate: 0.001" in text
    path.write_text(text.replace("learning_rate: 0.001", "learning_rate: 1e-4"))
    assert config.train_params(config.read_params(path)).learning_rate == 1e-4


@pytest.mark.parametrize(
    "case, needle",
    [
        ("latin-1 byte", "is not UTF-8 text (byte 0xe9 at offset"),
        ("a directory", "is a directory; it must be a YAML file"),
        ("missing", "not found"),
    ],
)
def test_an_unreadable_params_file_is_one_clear_error(tmp_path: Path, case: str, needle: str) -> None:
    path = tmp_path / "params.yaml"
    if case == "latin-1 byte":
        path.write_bytes("dataset: mnist  # caf\u00e9\n".encode("latin-1"))
    elif case == "a directory":
        path.mkdir()
    with pytest.raises(PipelineError, match="params.yaml") as err:
        config.read_params(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "0", "-1", "two", "1.5"])
def test_train_threads_must_be_a_plain_whole_number(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """`"²".isdigit()` is True in Python, and int("²") then fails: a traceback, before."""
    monkeypatch.setenv("TRAIN_THREADS", value)
    with pytest.raises(PipelineError, match=f"TRAIN_THREADS is {value!r}; it must be a whole number >= 1"):
        backend.limit_threads("tensorflow")


def test_train_threads_above_one_on_jax_says_it_cannot_be_honoured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TRAIN_THREADS", "2")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    backend.limit_threads("jax")
    err = capsys.readouterr().err
    assert err.startswith("train: note: TRAIN_THREADS=2 cannot be honoured on the JAX backend")
    assert err.count("\n") == 1
    monkeypatch.setenv("TRAIN_THREADS", "1")
    backend.limit_threads("jax")
    assert capsys.readouterr().err == ""
    import os

    assert "--xla_cpu_multi_thread_eigen=false" in os.environ["XLA_FLAGS"]


def test_compose_refuses_a_key_of_the_model_not_chosen_in_one_line() -> None:
    with pytest.raises(PipelineError, match=r"conf/: Could not override 'cnn.dropout'") as err:
        composition.compose(["cnn.dropout=0.3"], Path(config.__file__).parents[1] / "conf")
    assert "\n" not in str(err.value)
    assert (
        composition.compose(["model=cnn", "cnn.dropout=0.3"], Path(config.__file__).parents[1] / "conf")[
            "cnn"
        ]["dropout"]
        == 0.3
    )
    assert default_params("cnn")["epochs"] == 20
