"""Unit tests of the library each stage calls, on tiny data made here."""

from __future__ import annotations

import ast
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_classifier import catalogue, config, dataset, evaluation, inference, networks, plots, training
from mnist_classifier.errors import PipelineError
from stages import plot
from tests.support.commands import run, tool_env
from tests.support.data import idx_bytes, synthetic_digits
from tests.support.params import default_params, make_train_params
from tests.support.paths import ROOT

# --- params and dvc.yaml agree ------------------------------------------------------------

PARAM_LOADERS = {
    "fetch": config.FetchParams,
    "preprocess": config.PreprocessParams,
    "train": config.TrainParams,
    "evaluate": config.EvaluateParams,
    "plot": config.PlotParams,
}


# What a stage reads of the chosen dataset's catalogue entry (datasets.yaml read as params):
# fetch the files' names and checksums, preprocess those and the class names; never mirrors.
CATALOGUE_PARAMS = {
    "fetch": {"${catalogue}": ["${dataset}.files"]},
    "preprocess": {"${catalogue}": ["${dataset}.files", "${dataset}.classes", "own"]},
}


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", ["fetch", "preprocess", "train", "evaluate", "plot"])
def test_dvc_yaml_declares_exactly_the_params_each_stage_reads(stage: str) -> None:
    params = _stages()[stage].get("params", [])
    declared = {p.split(".")[-1] for p in params if isinstance(p, str)}
    from_catalogue = {k: v for p in params if isinstance(p, dict) for k, v in p.items()}
    assert from_catalogue == CATALOGUE_PARAMS.get(stage, {})
    loader = PARAM_LOADERS.get(stage)
    read = set(loader.__dataclass_fields__) if loader else set()
    if "network" in read:  # the `model` param and the chosen model's own block (`${model}`)
        read = read - {"network"} | {"model", "${model}"}
    assert declared == read


@pytest.mark.parametrize("stage", ["fetch", "preprocess", "train", "evaluate", "plot"])
def test_dvc_yaml_lists_every_project_module_a_stage_imports(stage: str) -> None:
    """Follow `mnist_classifier.*` imports transitively, inside functions too: the stage's
    Python deps are exactly the modules it can import (and the package's __init__.py)."""
    deps = {d for d in _stages()[stage]["deps"] if d.endswith(".py")}
    todo, seen = [f"stages/{stage}.py"], set()
    while todo:
        path = todo.pop()
        seen.add(path)
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnist_classifier"):
                names = (
                    [node.module]
                    if node.module != "mnist_classifier"
                    else [f"mnist_classifier.{a.name}" for a in node.names]
                )
                for name in [*names, "mnist_classifier"]:
                    module = name.replace(".", "/") + (".py" if "." in name else "/__init__.py")
                    if module not in seen:
                        todo.append(module)
    assert seen == deps, f"missing: {seen - deps}, not imported: {deps - seen}"


def test_default_params_are_the_seed_model() -> None:
    p = config.train_params(default_params())
    assert (p.model, p.epochs, p.batch_size, p.learning_rate, p.lr_schedule, p.optimizer) == (
        "mlp",
        20,
        512,
        0.001,
        "constant",
        "adam",
    )
    assert p.network == config.MlpConfig(hidden_units=(128, 128), activation="relu", dropout=0.05)
    assert config.preprocess_params(default_params()).dataset == "mnist"
    assert config.plot_params(default_params()).samples > 0
    cnn = config.train_params(default_params("cnn"))
    assert (cnn.model, cnn.epochs, cnn.batch_size, cnn.lr_schedule) == ("cnn", 11, 128, "cosine")
    assert cnn.network == config.CnnConfig()  # the dataclass defaults are conf/model/cnn.yaml's


def test_the_committed_params_yaml_is_the_composition_of_conf() -> None:
    """params.yaml is what `dvc exp run` would write from conf/, so it leaves no stray diff."""
    from mnist_classifier.composition import write_params

    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == default_params()
    assert (ROOT / ".dvc" / "config").read_text().count("enabled = true") == 1  # [hydra]
    composed = ROOT / "params.check.yaml"
    try:
        write_params(conf_dir=ROOT / "conf", path=composed)
        assert composed.read_text() == (ROOT / "params.yaml").read_text()
    finally:
        composed.unlink(missing_ok=True)


# --- catalogue -----------------------------------------------------------------------------


def test_catalogue_ships_mnist_and_fashion_mnist_with_checksums() -> None:
    for name in ("mnist", "fashion_mnist"):
        ds = catalogue.load_dataset(ROOT / "datasets.yaml", name)
        assert len(ds.classes) == 10 and ds.mirrors
        assert set(ds.files) == set(catalogue.ROLES)
        assert all(len(f.sha256) == 64 for f in ds.files.values())


# --- preprocess ----------------------------------------------------------------------------


def test_parse_idx_round_trips_images() -> None:
    images, _ = synthetic_digits(7, seed=3)
    parsed = dataset.parse_idx(idx_bytes(images, 0x803), 0x803, 3, "x")
    np.testing.assert_array_equal(parsed, images)


def test_to_features_keeps_the_bytes_flattens_and_one_hots() -> None:
    images = np.array([[[0] * 28] * 28, [[255] * 28] * 28], dtype=np.uint8)
    x, y = dataset.to_features(images, np.array([3, 9], dtype=np.uint8), 10)
    assert x.shape == (2, 784) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, images.reshape(2, 784))
    np.testing.assert_array_equal(y.argmax(1), [3, 9])
    assert y.dtype == np.float32 and y.sum() == 2


def test_split_is_seeded_stratified_and_disjoint() -> None:
    labels = np.repeat(np.arange(10), 50)
    train_idx, val_idx = dataset.split_indices(labels, 0.2, seed=1)
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    assert len(train_idx) + len(val_idx) == len(labels)
    assert np.all(np.bincount(labels[val_idx]) == 10)  # 20% of every class
    again = dataset.split_indices(labels, 0.2, seed=1)[1]
    other = dataset.split_indices(labels, 0.2, seed=2)[1]
    np.testing.assert_array_equal(val_idx, again)
    assert not np.array_equal(val_idx, other)


def test_preprocess_writes_three_splits(processed: Path) -> None:
    sizes = {}
    for split in ("train", "val", "test"):
        with np.load(processed / f"{split}.npz", allow_pickle=False) as d:
            assert d["x"].shape[1] == 784 and d["y"].shape[1] == 10
            assert d["x"].dtype == np.uint8
            assert list(d["classes"]) == [str(i) for i in range(10)]
            sizes[split] = len(d["x"])
    assert sizes == {"train": 400, "val": 100, "test": 100}
    assert sorted(p.name for p in processed.parent.iterdir() if p.name.startswith(".")) == []


# --- train ---------------------------------------------------------------------------------


def _load(processed: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(processed / f"{split}.npz", allow_pickle=False) as d:
        return d["x"], d["y"]


def test_model_is_the_seed_architecture() -> None:
    model = networks.build_model(config.train_params(default_params()), 784, 10)
    kinds = [(type(layer).__name__, getattr(layer, "units", None)) for layer in model.layers]
    assert kinds == [("Rescaling", None), ("Dense", 128), ("Dense", 128), ("Dropout", None), ("Dense", 10)]
    assert model.count_params() == 784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10
    assert model.loss == "categorical_crossentropy"


def test_training_learns_logs_and_is_deterministic(processed: Path, tmp_path: Path) -> None:
    p = make_train_params(epochs=3)
    first = training.train(p, _load(processed, "train"), _load(processed, "val"), tmp_path / "log")
    second = training.train(p, _load(processed, "train"), _load(processed, "val"))
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    logged = json.loads((tmp_path / "log" / "metrics.json").read_text())
    assert logged["eval"]["accuracy"] > 0.8  # synthetic classes are easy
    rows = (tmp_path / "log" / "plots" / "metrics" / "eval" / "loss.tsv").read_text().splitlines()
    assert rows[0] == "step\tloss" and len(rows) == 1 + p.epochs
    assert not (tmp_path / "dvc.yaml").exists()  # dvclive must not rewrite dvc.yaml


# --- evaluate ------------------------------------------------------------------------------


def test_score_matches_hand_computed_metrics() -> None:
    y_true = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    m = evaluation.score(y_true, probs, loss=0.5, classes=["a", "b"])
    assert m["test"]["accuracy"] == 0.75
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2}
    assert m["per_class"]["b"]["precision"] == 0.666667
    assert m["test"]["f1_macro"] == pytest.approx((2 / 3 + 0.8) / 2, abs=1e-6)


def test_write_outputs_gives_one_csv_row_per_sample(tmp_path: Path) -> None:
    y_true, probs = np.array([1, 0, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.1]])
    m = evaluation.score(y_true, probs, 0.1, ["zero", "one"])
    paths = (tmp_path / "m.json", tmp_path / "p.csv", tmp_path / "probs.npz")
    evaluation.write_outputs(m, y_true, probs, ["zero", "one"], *paths)
    assert json.loads(paths[0].read_text()) == m
    rows = list(csv.reader(paths[1].open()))
    assert rows == [["actual", "predicted"], ["one", "one"], ["zero", "zero"], ["one", "zero"]]
    with np.load(paths[2], allow_pickle=False) as d:
        np.testing.assert_allclose(d["probs"], probs)


# --- plot ----------------------------------------------------------------------------------


def test_plot_stage_writes_every_png_and_replaces_old_figures(
    processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through main(), as DVC runs it; a stale figures folder is replaced whole."""
    log = tmp_path / "log"
    for split in ("train", "eval"):
        for metric in ("loss", "accuracy"):
            (log / "plots" / "metrics" / split).mkdir(parents=True, exist_ok=True)
            (log / "plots" / "metrics" / split / f"{metric}.tsv").write_text(
                f"step\t{metric}\n0\t0.5\n1\t0.4\n"
            )
    with np.load(processed / "test.npz", allow_pickle=False) as d:
        n_test = len(d["y"])
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=n_test).astype(np.float32)
    np.savez(tmp_path / "probs.npz", probs=probs)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params()))
    out = tmp_path / "figures"
    out.mkdir()
    (out / "stale.png").write_text("from an earlier run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        "sys.argv",
        ["plot", "--data", str(processed), "--probs", "probs.npz", "--train-log", "log", "--out", "figures"],
    )
    plot.main()
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "confusion_matrix.png",
        "misclassified.png",
        "predictions.png",
        "samples.png",
        "training.png",
    ]
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


# --- command line --------------------------------------------------------------------------


def test_stage_paths_reads_every_option_as_a_required_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from mnist_classifier.cli import stage_paths

    monkeypatch.setattr("sys.argv", ["plot", "--train-log", "reports/train", "--out", "figs"])
    args = stage_paths("Stage 5, plot.\nmore", "train_log", "out")
    assert (args.train_log, args.out) == (Path("reports/train"), Path("figs"))
    monkeypatch.setattr("sys.argv", ["plot", "--out", "figs"])
    with pytest.raises(SystemExit) as exc:
        stage_paths("Stage 5, plot.", "train_log", "out")
    assert exc.value.code == 2 and "--train-log" in capsys.readouterr().err
    monkeypatch.setattr("sys.argv", ["plot", "--help"])
    with pytest.raises(SystemExit):
        stage_paths("Stage 5, plot.\nmore", "train_log", "out")
    assert "Stage 5, plot." in capsys.readouterr().out


# --- shared plumbing -----------------------------------------------------------------------


def test_use_keras_backend_names_the_backend_and_quiets_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    from mnist_classifier.backend import use_keras_backend

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    use_keras_backend("jax")
    assert os.environ["KERAS_BACKEND"] == "jax" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # a user's own setting wins
    use_keras_backend("tensorflow")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_load_npz_says_what_is_wrong_and_what_to_do(tmp_path: Path) -> None:
    from mnist_classifier.files import load_npz

    np.savez(tmp_path / "a.npz", x=np.zeros(3))
    with pytest.raises(PipelineError, match=r"a\.npz lacks y, classes; rerun `dvc repro` to rebuild it\."):
        load_npz(tmp_path / "a.npz", ("x", "y", "classes"))
    with pytest.raises(PipelineError, match=r"b\.npz not found; run `dvc repro` to build it\."):
        load_npz(tmp_path / "b.npz", ("x",))
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(
        PipelineError, match=r"c\.npz is not a readable \.npz \(not a zip archive\); rerun `dvc repro`"
    ):
        load_npz(tmp_path / "c.npz", ("x",))


def test_an_npz_is_the_same_bytes_on_every_python_and_reads_back(tmp_path: Path) -> None:
    """DVC hashes the processed data's bytes: np.savez's zip64 headers came out differently on
    CPython 3.11.2 and 3.11.7, so teammates on different Pythons shared no run-cache entry
    downstream of preprocess. Small members get the plain headers (version 20, no extra field)
    that every CPython from 3.10 to 3.13 on this machine writes alike, and the bytes are pinned:
    a change here (or in numpy's .npy header) changes every processed file's hash."""
    import hashlib
    import struct
    import zipfile

    from mnist_classifier.files import load_npz, save_npz

    arrays = {
        "x": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "y": np.eye(3, dtype=np.float32),
        "classes": np.array(list("abc")),
    }
    save_npz(tmp_path / "a.npz", **arrays)
    data = (tmp_path / "a.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        for member in archive.infolist():
            header = data[member.header_offset : member.header_offset + 30]
            version, extra = struct.unpack("<H", header[4:6])[0], struct.unpack("<H", header[28:30])[0]
            assert (member.filename, version, extra) == (member.filename, 20, 0)
    assert hashlib.md5(data).hexdigest() == "42195dc25d1f22b7b0781d40583e2065"
    back = load_npz(tmp_path / "a.npz", tuple(arrays))
    assert all(np.array_equal(back[k], v) and back[k].dtype == v.dtype for k, v in arrays.items())
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # written under a temporary name


def test_load_model_refuses_a_lambda_layer_without_running_it(tmp_path: Path) -> None:
    """safe_mode: a .keras file whose Lambda layer would run code is refused, in-process."""
    import keras

    marker = tmp_path / "pwned"
    payload = eval(f"lambda x: (open({str(marker)!r}, 'w'), x)[1]")  # a real code payload
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(payload), keras.layers.Dense(2)])
    model.save(tmp_path / "evil.keras")
    marker.unlink()  # building the model called the lambda once
    with pytest.raises(PipelineError, match=r"evil\.keras was refused: .*Lambda.*`dvc repro train`"):
        inference.load_model(tmp_path / "evil.keras")
    assert not marker.exists()


def test_parse_idx_accepts_an_empty_set_and_refuses_a_short_header() -> None:
    empty = dataset.parse_idx(idx_bytes(np.zeros((0, 28, 28), np.uint8), 0x803), 0x803, 3, "e")
    assert empty.shape == (0, 28, 28)
    with pytest.raises(PipelineError, match="only 15 bytes, shorter than an IDX header"):
        dataset.parse_idx(idx_bytes(np.zeros((0, 28, 28), np.uint8), 0x803)[:15], 0x803, 3, "e")


def test_split_refuses_to_leave_validation_empty() -> None:
    with pytest.raises(
        PipelineError, match="val_fraction 0.01 leaves an empty training or validation set from 20 samples"
    ):
        dataset.split_indices(np.repeat(np.arange(10), 2), 0.01, seed=0)


def test_seed_zero_is_a_valid_seed_everywhere() -> None:
    raw = {**default_params(), "seed": 0}
    assert (
        config.plot_params(raw).seed
        == config.preprocess_params(raw).seed
        == config.train_params(raw).seed
        == 0
    )


def test_read_curve_names_a_missing_log(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"loss\.tsv not found; run `dvc repro train`\."):
        plots.read_curve(tmp_path / "loss.tsv")


def test_ctrl_c_sets_the_flag_that_long_loops_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from mnist_classifier import errors

    monkeypatch.setattr(errors, "_interrupted", False)
    errors.raise_if_interrupted()  # nothing pending: no effect
    with pytest.raises(KeyboardInterrupt):
        errors.on_sigint(2, None)
    with pytest.raises(KeyboardInterrupt):  # raised again, even if the first one was swallowed
        errors.raise_if_interrupted()


def test_run_stage_exit_codes_and_messages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Bad input: exit 1 and `<stage>: error: ...`; Ctrl-C: exit 130; the SIGINT handler is ours."""
    import signal

    from mnist_classifier import cli, errors

    monkeypatch.setattr(errors, "_interrupted", False)
    previous = signal.getsignal(signal.SIGINT)
    seen = []

    def bad_input() -> None:
        seen.append(signal.getsignal(signal.SIGINT))
        raise PipelineError("x.yaml is wrong; fix it.")

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(SystemExit) as exc:
            cli.run_command("demo", bad_input)
        assert exc.value.code == 1 and seen == [errors.on_sigint]
        assert capsys.readouterr().err == "demo: error: x.yaml is wrong; fix it.\n"
        with pytest.raises(SystemExit) as exc:
            cli.run_command("demo", ctrl_c)
        assert exc.value.code == 130
        assert capsys.readouterr().err == "demo: interrupted; no output was written.\n"
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # `cmd &` from a script: left ignored
        with pytest.raises(SystemExit):
            cli.run_command("demo", bad_input)
        assert seen[-1] == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


PROGRAM = """
import atexit, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from mnist_classifier.cli import run_program
from mnist_classifier.errors import PipelineError

class TornDown:
    def __del__(self):
        print("torn down", flush=True)

kept = TornDown()  # Python's teardown at exit would call its __del__
pool = ThreadPoolExecutor(1)  # left open: its idle worker stops only when told to at exit
atexit.register(lambda: Path("atexit.txt").write_text("ran"))

def late():
    time.sleep(0.5)
    Path("thread.txt").write_text("done")

def main():
    threading.Thread(target=late).start()
    pool.submit(print, end="").result()
    print("answer", end="")  # no newline: still in stdout's buffer when main returns
    if sys.argv[1] == "bad":
        raise PipelineError("x.yaml is wrong; fix it.")
    return int(sys.argv[1])

run_program("demo", main)
"""


@pytest.mark.parametrize(
    "arg, status, err",
    [("0", 0, ""), ("3", 3, ""), ("bad", 1, "demo: error: x.yaml is wrong; fix it.\n")],
    ids=["done", "some refused", "bad input"],
)
def test_a_program_exits_as_sys_exit_would_but_without_the_interpreters_teardown(
    tmp_path: Path, arg: str, status: int, err: str
) -> None:
    """run_program(): the status, all output, the atexit handlers and other threads' work, as
    an ordinary exit gives them (a thread pool left open does not hang it); not the teardown
    (a global's __del__ never runs)."""
    env = {k: v for k, v in tool_env().items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as by default
    proc = run(tmp_path, sys.executable, "-c", PROGRAM, arg, env=env, check=False, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, "answer", err)
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "thread.txt").read_text() == "done"


@pytest.mark.parametrize("value", [5, "", None])
def test_dataset_param_must_be_a_name(value: object) -> None:
    with pytest.raises(
        PipelineError,
        match=rf"`dataset` is {value!r}; it must be a dataset name from "
        r"datasets\.yaml\. Fix conf/ or your `-S dataset=\.\.\.`",
    ):
        config.fetch_params({"dataset": value})


def test_progress_line_shows_the_share_and_megabytes(capsys: pytest.CaptureFixture) -> None:
    from mnist_classifier import download

    download._progress("a.gz", 500_000, 2_000_000, final=True)
    download._progress("b.gz", 1_500_000, None)  # no size announced; stderr is not a terminal here
    assert capsys.readouterr().err == "\rfetch: a.gz  25% 0.50/2.00 MB\n\rfetch: b.gz 1.50 MB\n"


def test_sources_put_data_mirror_first_and_tell_urls_from_folders() -> None:
    from mnist_classifier import download

    ds = catalogue.Dataset("mnist", ("0", "1"), ("https://a.example/m/", "http://b.example/x"), {})
    assert download.sources(ds, "/data/") == ["/data/mnist", "https://a.example/m", "http://b.example/x"]
    assert download.sources(ds, None) == ["https://a.example/m", "http://b.example/x"]
    assert [download._is_url(b) for b in ("HTTPS://x", "http://x", "file:///x", "/x:y", "C:/data")] == [
        True,
        True,
        True,
        False,
        False,
    ]
