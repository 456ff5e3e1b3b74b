"""Reading params and the environment: the traps a hand-written file or a shell sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_classifier import backend, composition, config
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import load_yaml
from tests.support.params import default_params
from tests.support.paths import ROOT


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


def test_jax_keeps_compiled_steps_in_the_users_cache_unless_a_folder_is_chosen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    backend.use_keras_backend("tensorflow")  # TensorFlow compiles nothing to keep
    assert "JAX_COMPILATION_CACHE_DIR" not in os.environ
    backend.use_keras_backend("jax")
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "mnist-classifier" / "jax")
    assert os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"  # even the short compiles
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    backend.use_keras_backend("jax")
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "mine")


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
    assert default_params("cnn")["epochs"] == 11  # the CNN group's own, not the MLP's 20


# --- floats dvc.lock keeps, and params written back into conf/ (`make keep`) ----------------


@pytest.mark.parametrize(
    "value, kept",
    [
        (0.001, True),
        (0.1, True),
        (6.46642e-05, True),  # what make tune draws: 6 significant digits
        (0.00123456789012345678, True),  # long, but not in exponent form: ruamel writes it whole
        (6.466422717414563e-05, False),  # comes back from dvc.lock as ...561e-05
        (5.186751380740319e-05, False),
    ],
)
def test_a_float_is_accepted_exactly_when_dvc_lock_keeps_it(value: float, kept: bool) -> None:
    assert config.lock_keeps(value) is kept
    raw = default_params() | {"learning_rate": value}
    if kept:
        assert config.train_params(raw).learning_rate == value
    else:
        with pytest.raises(PipelineError, match=r"write at most 6 significant digits") as err:
            config.train_params(raw)
        assert f"-S learning_rate={config.short_float(value)}`" in str(err.value)
        assert "\n" not in str(err.value) and config.lock_keeps(config.short_float(value))


def test_keep_in_conf_writes_an_experiment_s_params_back_keeping_comments(tmp_path: Path) -> None:
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    params = composition.compose(["model=cnn", "epochs=3", "cnn.filters=[8,16]", "plot.samples=9"], conf)
    changed = composition.keep_in_conf(params, conf)
    assert sorted(p.name for p in changed) == ["cnn.yaml", "config.yaml"]
    assert composition.compose(conf_dir=conf) == params  # every later run starts from them
    text = (conf / "config.yaml").read_text()
    assert "- model: cnn" in text and "# the working default" in text and "samples: 9 " in text
    assert "epochs: 3" in (conf / "model" / "cnn.yaml").read_text()
    assert (conf / "model" / "cnn.yaml").read_text().startswith("# @package _global_")
    assert (conf / "model" / "mlp.yaml").read_text() == (ROOT / "conf" / "model" / "mlp.yaml").read_text()
    assert composition.keep_in_conf(params, conf) == []  # already kept: nothing to write


def test_keep_in_conf_refuses_a_key_conf_lacks_and_writes_nothing(tmp_path: Path) -> None:
    import shutil

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    params = composition.compose(conf_dir=conf) | {"warmup": 1}
    with pytest.raises(PipelineError, match=r"warmup is in no file of .*conf/; add the key") as err:
        composition.keep_in_conf(params, conf)
    assert "\n" not in str(err.value)
    for name in ("config.yaml", "model/mlp.yaml", "model/cnn.yaml"):
        assert (conf / name).read_text() == (ROOT / "conf" / name).read_text()
