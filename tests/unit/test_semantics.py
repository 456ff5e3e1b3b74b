"""What the numbers mean: each param reaches the model, the splits cannot leak, the metrics
have fixed answers, and a trained model behaves as its data says it should.

Effects are read back from what Keras and the written files report, never from our own
params object; expected metrics are numbers worked out by hand, not the library call the
code makes.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_classifier import catalogue, config, dataset, evaluation, inference, networks, plots, training
from mnist_classifier.errors import PipelineError
from stages import evaluate, preprocess, train
from tests.support.data import FILE_NAMES, synthetic_digits
from tests.support.params import default_params, make_train_params
from tests.support.paths import ROOT


def _load(processed: Path, split: str) -> dict[str, np.ndarray]:
    with np.load(processed / f"{split}.npz", allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def _xy(processed: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    d = _load(processed, split)
    return d["x"], d["y"]


# --- 1. every param reaches its effect ------------------------------------------------------


def _layers(model: object) -> list[tuple[str, dict]]:
    return [(type(layer).__name__, layer.get_config()) for layer in model.layers]


def test_hidden_units_activation_and_dropout_shape_the_layers() -> None:
    params = make_train_params(mlp={"hidden_units": [7, 5], "activation": "tanh", "dropout": 0.3})
    model = networks.build_model(params, 784, 10)
    layers = _layers(model)
    assert [name for name, _ in layers] == ["Rescaling", "Dense", "Dense", "Dropout", "Dense"]
    assert (layers[0][1]["scale"], layers[0][1]["offset"]) == (pytest.approx(1 / 255), 0.0)  # bytes to [0, 1]
    assert [cfg["units"] for name, cfg in layers if name == "Dense"] == [7, 5, 10]
    assert [cfg["activation"] for name, cfg in layers if name == "Dense"] == ["tanh", "tanh", "softmax"]
    assert layers[3][1]["rate"] == pytest.approx(0.3)
    assert model.input_shape == (None, 784)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize(
    "name, keras_class",
    [
        ("adam", "Adam"),
        ("adamw", "AdamW"),
        ("nadam", "Nadam"),
        ("rmsprop", "RMSprop"),
        ("sgd", "SGD"),
    ],
)
def test_optimizer_and_learning_rate_reach_keras(model: str, name: str, keras_class: str) -> None:
    import keras

    params = make_train_params(
        model, optimizer=name, learning_rate=0.0123, lr_schedule="constant", warmup_epochs=0
    )
    built = networks.build_model(params, 784, 10)
    assert type(built.optimizer).__name__ == keras_class
    assert float(keras.ops.convert_to_numpy(built.optimizer.learning_rate)) == pytest.approx(0.0123)


def test_the_cnn_params_shape_its_layers() -> None:
    cnn = {
        **{"filters": [4, 6, 8], "convs": 1, "kernel": 3, "padding": "same", "dense_units": 9},
        **{"flat_dropout": 0.25, "dropout": 0.25, "augment": True},
    }
    layers = _layers(networks.build_model(make_train_params("cnn", cnn=cnn), 784, 10))
    names = [name for name, _ in layers]
    assert names[:3] == ["Rescaling", "Reshape", "RandomTranslation"] and layers[1][1]["target_shape"] == (
        28,
        28,
        1,
    )
    assert (layers[2][1]["height_factor"], layers[2][1]["width_factor"]) == (0.1, 0.1)
    assert [cfg["filters"] for name, cfg in layers if name == "Conv2D"] == [4, 6, 8]
    assert names.count("BatchNormalization") == 3 and names.count("MaxPooling2D") == 3
    assert [cfg["units"] for name, cfg in layers if name == "Dense"] == [9, 10]
    assert [cfg["rate"] for name, cfg in layers if name == "Dropout"] == [0.25, 0.25]
    unaugmented = make_train_params("cnn", cnn={**cnn, "augment": False})
    assert "RandomTranslation" not in [
        name for name, _ in _layers(networks.build_model(unaugmented, 784, 10))
    ]


def test_each_model_reads_its_own_block_and_not_the_other(processed: Path) -> None:
    """The chosen model's params are the top-level ones; the other model's block need not exist."""
    cnn_only = default_params("cnn")
    assert "mlp" not in cnn_only and "cnn" not in default_params("mlp")
    params = config.train_params(
        {
            **cnn_only,
            "epochs": 2,
            "batch_size": 40,
            "cnn": {**cnn_only["cnn"], "filters": [4], "dense_units": 8},
        }
    )
    assert params.model == "cnn" and params.network == config.CnnConfig(filters=(4,), dense_units=8)
    x, y = _xy(processed, "train")
    model = training.train(params, (x, y), _xy(processed, "val"))
    assert int(model.optimizer.iterations) == 2 * -(-len(x) // 40)
    with pytest.raises(PipelineError, match="lacks `cnn.filters`"):
        config.train_params({**default_params("mlp"), "model": "cnn"})


def _rates(schedule: object, steps: list[int]) -> list[float]:
    import keras

    return [round(float(keras.ops.convert_to_numpy(schedule(s))), 6) for s in steps]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_the_cosine_schedule_falls_along_a_half_cosine(processed: Path, model: str) -> None:
    """Step by step (Keras' CosineDecay), from learning_rate to 0 at the last step."""
    from mnist_classifier.networks import learning_rate

    constant = make_train_params(model, lr_schedule="constant", learning_rate=0.01, warmup_epochs=0)
    assert learning_rate(constant, 10) == 0.01  # the seed's plain number
    small = {"cnn": {"filters": [4], "dense_units": 8}} if model == "cnn" else {}
    params = make_train_params(
        model, lr_schedule="cosine", learning_rate=0.01, epochs=4, warmup_epochs=0, **small
    )
    schedule = learning_rate(params, 10)
    assert _rates(schedule, [0, 10, 20, 30, 40, 50]) == [0.01, 0.008536, 0.005, 0.001464, 0.0, 0.0]
    params = make_train_params(
        model, lr_schedule="cosine", learning_rate=0.01, epochs=2, warmup_epochs=0, **small
    )
    trained = training.train(params, _xy(processed, "train"), _xy(processed, "val"))
    steps = -(-len(_xy(processed, "train")[0]) // params.batch_size)
    read_back = trained.optimizer.get_config()["learning_rate"]["config"]
    assert (read_back["initial_learning_rate"], read_back["decay_steps"], read_back["warmup_steps"]) == (
        0.01,
        2 * steps,
        0,
    )
    assert float(trained.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # the last step's


@pytest.mark.parametrize(
    "schedule, after", [("constant", [0.01, 0.01, 0.01]), ("cosine", [0.01, 0.005, 0.0])]
)
def test_warmup_climbs_from_zero_over_its_epochs_then_follows_the_schedule(
    schedule: str, after: list
) -> None:
    from mnist_classifier.networks import learning_rate

    params = make_train_params(lr_schedule=schedule, learning_rate=0.01, epochs=3, warmup_epochs=1)
    assert _rates(learning_rate(params, 10), [0, 5, 10, 20, 30]) == [0.0, 0.005, *after]


def test_warmup_leaves_at_least_the_last_epoch_to_the_schedule() -> None:
    """`-S epochs=1` on a model that warms up over one epoch trains at the full rate at once."""
    from mnist_classifier.networks import learning_rate

    one = make_train_params(lr_schedule="cosine", learning_rate=0.01, epochs=1, warmup_epochs=1)
    assert _rates(learning_rate(one, 10), [0, 5, 10]) == [0.01, 0.005, 0.0]
    two = make_train_params(lr_schedule="constant", learning_rate=0.01, epochs=2, warmup_epochs=5)
    assert _rates(learning_rate(two, 10), [0, 5, 10, 20]) == [0.0, 0.005, 0.01, 0.01]


def test_validation_last_epoch_scores_the_validation_set_once(processed: Path, tmp_path: Path) -> None:
    """last_epoch scores the validation set once; what it logs is the trained model's loss on
    val.npz, and `make tune`'s progress file gets that one line."""
    val = _xy(processed, "val")
    progress = tmp_path / "progress.jsonl"
    model = training.train(
        make_train_params(epochs=3, validation="last_epoch"), _xy(processed, "train"), val, progress=progress
    )
    history = model.history.history
    assert len(history["loss"]) == 3 and len(history["val_loss"]) == 1
    assert history["val_loss"][-1] == pytest.approx(model.evaluate(*val, verbose=0)[0], rel=1e-4)
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [2]


def test_the_loss_is_categorical_cross_entropy_in_training_and_in_evaluation() -> None:
    model = networks.build_model(make_train_params(), 784, 10)
    assert model.loss == "categorical_crossentropy"
    y = np.eye(2, dtype=np.float32)
    probs = np.array([[0.8, 0.2], [0.5, 0.5]], dtype=np.float32)
    assert evaluation.test_loss(y, probs) == pytest.approx(-(np.log(0.8) + np.log(0.5)) / 2, rel=1e-5)


def test_batch_size_and_epochs_set_the_steps_and_the_history(processed: Path) -> None:
    x, y = _xy(processed, "train")
    model = training.train(make_train_params(batch_size=48, epochs=3), (x, y), _xy(processed, "val"))
    assert len(model.history.history["loss"]) == 3
    assert int(model.optimizer.iterations) == 3 * math.ceil(len(x) / 48)


def test_seed_sets_the_initial_weights() -> None:
    def first_kernel(seed: int) -> np.ndarray:
        training.make_deterministic(seed)
        return networks.build_model(make_train_params(seed=seed), 784, 10).get_weights()[0]

    np.testing.assert_array_equal(first_kernel(1), first_kernel(1))
    assert not np.array_equal(first_kernel(1), first_kernel(2))


def test_training_on_jax_never_imports_tensorflow_and_keeps_its_compiled_steps(
    processed: Path, tmp_path: Path
) -> None:
    """The MLP's default backend is JAX so that its train stage skips TensorFlow's import (the
    third of its time: docs/performance.md); Keras' own seeding would import it all the same.
    What XLA compiled stays on disk, so that the next run with the same shapes skips it."""
    params = {**default_params(), "backend": "jax", "epochs": 1, "batch_size": 64}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = (
        "import sys; from stages import train; "
        f"sys.argv = ['train', '--data', {str(processed)!r}, '--model', 'm.keras', '--log', 'log']; "
        "train.main(); import keras; "
        "print(keras.backend.backend(), 'tensorflow' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "JAX_COMPILATION_CACHE_DIR")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["jax", "False"]
    assert (tmp_path / "m.keras").is_file()
    # and its compiled steps are kept for the next run, in the user's cache
    assert any((tmp_path / "cache" / "mnist-classifier" / "jax").iterdir())


def test_fit_validates_on_the_validation_set(processed: Path) -> None:
    """The last epoch's val_loss is the trained model's loss on val.npz, not on train.npz."""
    val, train_set = _xy(processed, "val"), _xy(processed, "train")
    model = training.train(make_train_params(epochs=2), train_set, val)
    assert make_train_params().validation == "every_epoch" and len(model.history.history["val_loss"]) == 2
    logged = model.history.history["val_loss"][-1]
    assert logged == pytest.approx(model.evaluate(*val, verbose=0)[0], rel=1e-4)
    assert logged != pytest.approx(model.evaluate(*train_set, verbose=0)[0], rel=1e-3)


def test_train_stage_logs_validation_on_val_npz(
    processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through main(), as DVC runs it: the eval curve is measured on val.npz."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**default_params(), "epochs": 2, "batch_size": 64}))
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "stale.tsv").write_text("from an earlier run")  # replaced whole
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "argv", ["train", "--data", str(processed), "--model", "m.keras", "--log", "log"]
    )
    train.main()
    assert not (tmp_path / "log" / "stale.tsv").exists()
    logged = json.loads((tmp_path / "log" / "metrics.json").read_text())["eval"]["loss"]
    import keras

    model = keras.models.load_model(tmp_path / "m.keras")  # compiled as trained: its loss
    assert logged == pytest.approx(model.evaluate(*_xy(processed, "val"), verbose=0)[0], rel=1e-4)


# --- 2. data that cannot leak ---------------------------------------------------------------


def _raw_split(raw: Path, images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    """The IDX files decoded here, independently of dataset.parse_idx."""
    x = np.frombuffer(gzip.decompress((raw / FILE_NAMES[images]).read_bytes())[16:], np.uint8)
    y = np.frombuffer(gzip.decompress((raw / FILE_NAMES[labels]).read_bytes())[8:], np.uint8)
    return x.reshape(-1, 784), y


def _rows(x: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in x]


def test_splits_are_disjoint_by_content_and_exactly_the_dataset_files(
    tiny_raw: tuple[Path, catalogue.Dataset], processed: Path
) -> None:
    raw, _ = tiny_raw
    train_img, train_lab = _raw_split(raw, "train_images", "train_labels")
    test_img, test_lab = _raw_split(raw, "test_images", "test_labels")
    assert len(set(_rows(np.concatenate([train_img, test_img])))) == len(train_img) + len(test_img)

    tr, va, te = (_load(processed, s) for s in ("train", "val", "test"))
    assert not set(_rows(tr["x"])) & set(_rows(va["x"]))
    assert not set(_rows(tr["x"])) & set(_rows(te["x"]))
    assert not set(_rows(va["x"])) & set(_rows(te["x"]))

    # Pixels are the files' bytes, flattened (the model scales them), labels one-hot.
    def features(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), 784)

    # The test set is the test files, in order.
    np.testing.assert_array_equal(te["x"], features(test_img))
    np.testing.assert_array_equal(te["y"], np.eye(10, dtype=np.float32)[test_lab])
    assert te["x"].dtype == np.uint8 and te["y"].dtype == np.float32

    # Train and validation together are the training files, each image with its own label.
    label_of = dict(zip(_rows(features(train_img)), train_lab))
    together = np.concatenate([tr["x"], va["x"]])
    assert sorted(_rows(together)) == sorted(label_of)
    for split in (tr, va):
        assert [label_of[r] for r in _rows(split["x"])] == list(split["y"].argmax(1))
        assert set(np.unique(split["y"])) == {0.0, 1.0} and np.all(split["y"].sum(1) == 1)
    assert len(va["x"]) == round(0.2 * len(train_img))


def test_the_seed_param_picks_the_validation_split(
    tiny_raw: tuple[Path, catalogue.Dataset], processed: Path, tmp_path: Path
) -> None:
    raw, tiny = tiny_raw

    def val_images(seed: int) -> np.ndarray:
        dataset.preprocess(tiny, raw, tmp_path / str(seed), val_fraction=0.2, seed=seed)
        return _load(tmp_path / str(seed), "val")["x"]

    np.testing.assert_array_equal(val_images(0), _load(processed, "val")["x"])  # the fixture used 0
    assert not np.array_equal(val_images(1), _load(processed, "val")["x"])


def test_the_preprocess_stage_splits_with_the_seed_param(
    tiny_raw: tuple[Path, catalogue.Dataset], processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through main(), as DVC runs it: params.yaml's seed and val_fraction make the split."""
    raw, dataset = tiny_raw
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"tiny": catalogue_entry_of(dataset)}))
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({**default_params(), "dataset": "tiny", "seed": 0, "val_fraction": 0.2})
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        ["preprocess", "--catalogue", "datasets.yaml", "--raw", str(raw), "--own", "own", "--out", "out"],
    )
    preprocess.main()
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(_load(tmp_path / "out", split)["x"], _load(processed, split)["x"])


def catalogue_entry_of(dataset: catalogue.Dataset) -> dict:
    return {
        "classes": list(dataset.classes),
        "mirrors": [],
        "files": {role: {"name": f.name, "sha256": f.sha256} for role, f in dataset.files.items()},
    }


def test_the_evaluate_stage_reads_the_test_split() -> None:
    """dvc.yaml hands evaluate test.npz, and train the train and validation files."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    eval_args = shlex.split(dvc["evaluate"]["cmd"])
    assert eval_args[eval_args.index("--test") + 1] == "${processed}/test.npz"
    assert "${processed}/test.npz" not in dvc["train"]["deps"]
    assert {"${processed}/train.npz", "${processed}/val.npz"} <= set(dvc["train"]["deps"])


# --- 3. metrics with fixed answers ----------------------------------------------------------

# Eight test images, five classes: supports 2, 2, 3, 1, 0, so macro and weighted averages
# differ, class "three" is never predicted (precision 0/0) and class "four" never occurs.
# Predictions (argmax): 0, 1, 1, 2, 2, 2, 2, 2.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2, 3])
PROBS = np.array(
    [
        [0.70, 0.20, 0.05, 0.03, 0.02],  # right
        [0.20, 0.50, 0.20, 0.05, 0.05],  # wrong: zero read as one, confidence 0.5
        [0.10, 0.80, 0.05, 0.03, 0.02],  # right
        [0.30, 0.20, 0.40, 0.05, 0.05],  # wrong: one read as two, confidence 0.4
        [0.05, 0.05, 0.80, 0.05, 0.05],  # right
        [0.15, 0.10, 0.65, 0.05, 0.05],  # right
        [0.02, 0.03, 0.90, 0.03, 0.02],  # right
        [0.10, 0.10, 0.45, 0.30, 0.05],  # wrong: three read as two, confidence 0.45
    ],
    dtype=np.float32,
)
CLASSES = ["zero", "one", "two", "three", "four"]
# Worked by hand. Precision = right / predicted, recall = right / actual, 0 where either is 0/0:
# zero 1/1, 1/2; one 1/2, 1/2; two 3/5, 3/3; three 0/0, 0/1; four 0/0, 0/0.
# Macro averages are over all five classes. Accuracy 5/8.
# Loss: -(ln .7 + ln .2 + ln .8 + ln .2 + ln .8 + ln .65 + ln .9 + ln .3) / 8 = 0.7202443.
EXPECTED = {
    "test": {
        "loss": 0.720244,
        "accuracy": 0.625,
        "precision_macro": 0.42,
        "recall_macro": 0.4,
        "f1_macro": 0.383333,
    },
    "per_class": {
        "zero": {"precision": 1.0, "recall": 0.5, "f1": 0.666667, "support": 2},
        "one": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "two": {"precision": 0.6, "recall": 1.0, "f1": 0.75, "support": 3},
        "three": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "four": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    },
}


@pytest.fixture()
def evaluated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Path:
    """The evaluate stage's main() on a model whose outputs are exactly PROBS.

    The model is a softmax layer fed log-probabilities, so softmax(log p) = p.
    """
    import keras

    model = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Activation("softmax")])
    model.save(tmp_path / "model.keras")
    np.savez(
        tmp_path / "test.npz",
        x=np.log(PROBS),
        y=np.eye(5, dtype=np.float32)[Y_TRUE],
        classes=np.array(CLASSES),
    )
    np.savez(tmp_path / "own_test.npz", names=np.array([], dtype=str), classes=np.array(CLASSES))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(default_params()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "evaluate",
            "--model",
            "model.keras",
            "--test",
            "test.npz",
            "--own-test",
            "own_test.npz",
            "--metrics",
            "metrics.json",
            "--predictions",
            "predictions.csv",
            "--probs",
            "probs.npz",
        ],
    )
    evaluate.main()
    (tmp_path / "stdout").write_text(capsys.readouterr().out)
    return tmp_path


def test_metrics_file_holds_the_hand_computed_figures(evaluated: Path) -> None:
    assert json.loads((evaluated / "metrics.json").read_text()) == EXPECTED  # to the 6th digit
    assert (evaluated / "stdout").read_text() == "evaluate: test accuracy 0.6250, loss 0.7202\n"


def test_confusion_csv_and_probabilities_agree_with_the_model(evaluated: Path) -> None:
    rows = list(csv.reader((evaluated / "predictions.csv").open()))
    assert rows == [
        ["actual", "predicted"],
        ["zero", "zero"],
        ["zero", "one"],
        ["one", "one"],
        ["one", "two"],
        ["two", "two"],
        ["two", "two"],
        ["two", "two"],
        ["three", "two"],
    ]
    with np.load(evaluated / "probs.npz", allow_pickle=False) as d:
        np.testing.assert_allclose(d["probs"], PROBS, atol=1e-6)
        assert d["probs"].dtype == np.float32


def test_confusion_matrix_counts_the_hand_example() -> None:
    np.testing.assert_array_equal(
        plots.confusion(Y_TRUE, PROBS.argmax(1), 5),
        [[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 3, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]],
    )


def test_prediction_titles_name_the_argmax_and_the_truth() -> None:
    titles, colors = plots.prediction_panel(CLASSES, Y_TRUE, PROBS, np.array([3, 0, 1]))
    assert titles == [
        "Predicted: two\nTrue: one",
        "Predicted: zero\nTrue: zero",
        "Predicted: one\nTrue: zero",
    ]
    assert colors == ["red", "black", "red"]


@pytest.mark.parametrize(
    "y_true, probs, expected",
    [
        ([0, 0, 1, 1], [[0.1, 0.9], [0.9, 0.1], [0.6, 0.4], [0.99, 0.01]], [3, 0, 2]),  # by confidence
        ([0] * 6, [[0.2, 0.8]] * 5 + [[0.1, 0.9]], [5, 0, 1, 2, 3, 4]),  # ties keep the test order
    ],
    ids=["most confident first", "ties in test order"],
)
def test_most_confident_errors(y_true: list, probs: list, expected: list) -> None:
    found = plots.most_confident_errors(np.array(y_true), np.array(probs), 6)
    np.testing.assert_array_equal(found, expected)


def test_misclassified_gallery_holds_only_errors_most_confident_first() -> None:
    worst, titles = plots.error_panel(CLASSES, Y_TRUE, PROBS, 16)
    assert list(worst) == [1, 7, 3]
    assert titles == [
        "Predicted: one (50.0%)\nTrue: zero",
        "Predicted: two (45.0%)\nTrue: three",
        "Predicted: two (40.0%)\nTrue: one",
    ]
    assert list(plots.error_panel(CLASSES, Y_TRUE, PROBS, 1)[0]) == [1]


def test_figures_show_the_images_and_titles_they_claim(
    processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make_figures hands the drawing functions the right images, titles, counts and curves."""
    drawn: dict[str, object] = {}
    monkeypatch.setattr(
        plots,
        "image_grid",
        lambda path, images, titles, colors=None: drawn.__setitem__(path.name, (images, titles, colors)),
    )
    monkeypatch.setattr(plots, "curves_figure", lambda path, curves: drawn.__setitem__(path.name, curves))
    monkeypatch.setattr(
        plots, "confusion_figure", lambda path, matrix, names: drawn.__setitem__(path.name, (matrix, names))
    )
    train_set, test = _load(processed, "train"), _load(processed, "test")
    y_test, classes = test["y"].argmax(1), [str(c) for c in test["classes"]]
    probs = np.random.default_rng(3).dirichlet(np.ones(10), size=len(y_test)).astype(np.float32)
    log = tmp_path / "log" / "plots" / "metrics"
    for split, values in (("train", "0.9\n1\t0.5\n2\t0.3"), ("eval", "1.1\n1\t0.7\n2\t0.6")):
        (log / split).mkdir(parents=True)
        for metric in ("loss", "accuracy"):
            (log / split / f"{metric}.tsv").write_text(f"step\t{metric}\n0\t{values}\n")
    n_train = len(train_set["x"])  # ask for every training image: a pick with replacement repeats some
    settings = {**default_params(), "plot": {"samples": n_train, "predictions": 6, "misclassified": 5}}

    def draw(seed: int) -> dict[str, object]:
        drawn.clear()
        plots.make_figures(
            config.plot_params({**settings, "seed": seed}), train_set, test, probs, tmp_path / "log", tmp_path
        )
        return dict(drawn)

    figures = draw(seed=1)
    images, titles, _ = figures["samples.png"]  # different training images, each with its label
    label_of = {r.tobytes(): str(c) for r, c in zip(train_set["x"], train_set["y"].argmax(1))}
    assert len({r.tobytes() for r in images}) == n_train
    assert titles == [label_of[r.tobytes()] for r in images]

    images, titles, colors = figures["predictions.png"]  # six different test images
    index_of = {r.tobytes(): i for i, r in enumerate(test["x"])}
    picked = np.array([index_of[r.tobytes()] for r in images])
    assert len(set(picked)) == 6
    assert (titles, colors) == plots.prediction_panel(classes, y_test, probs, picked)

    images, titles, _ = figures["misclassified.png"]
    worst, expected = plots.error_panel(classes, y_test, probs, 5)
    np.testing.assert_array_equal(images, test["x"][worst])
    assert titles == expected and len(titles) == 5

    matrix, names = figures["confusion_matrix.png"]
    np.testing.assert_array_equal(matrix, plots.confusion(y_test, probs.argmax(1), 10))
    assert names == classes and matrix.sum() == len(y_test)

    curve = {"train": ([0, 1, 2], [0.9, 0.5, 0.3]), "validation": ([0, 1, 2], [1.1, 0.7, 0.6])}
    assert figures["training.png"] == {"loss": curve, "accuracy": curve}

    with pytest.raises(PipelineError, match="the probabilities and the test set differ in length"):
        plots.make_figures(
            config.plot_params(settings), train_set, test, probs[:-1], tmp_path / "log", tmp_path
        )

    # The random picks follow the `seed` param, and only it.
    again, other = draw(seed=1), draw(seed=2)
    np.testing.assert_array_equal(again["samples.png"][0], figures["samples.png"][0])
    assert not np.array_equal(other["samples.png"][0], figures["samples.png"][0])


# --- 4. model behaviour ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(processed: Path) -> object:
    return training.train(
        make_train_params(epochs=8, batch_size=32), _xy(processed, "train"), _xy(processed, "val")
    )


def test_predictions_do_not_depend_on_batch_order_or_size(trained: object) -> None:
    x = synthetic_digits(64, seed=7)[0].reshape(64, -1)
    base = trained.predict(x, batch_size=64, verbose=0)
    order = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_allclose(trained.predict(x[order], batch_size=64, verbose=0), base[order], atol=1e-5)
    np.testing.assert_allclose(trained.predict(x, batch_size=1, verbose=0), base, atol=1e-5)
    np.testing.assert_allclose(trained.predict(x, batch_size=4096, verbose=0), base, atol=1e-5)


def test_shifted_moves_each_picture_one_pixel_and_blanks_the_border() -> None:
    picture = np.zeros((28, 28), np.uint8)
    picture[0, 5], picture[10, 27] = 200, 90  # one dot on the top edge, one on the right
    x = picture.reshape(1, -1)
    for (rows, cols), dots in {
        (-1, 0): {(9, 27): 90},  # up: the top dot falls off
        (1, 0): {(1, 5): 200, (11, 27): 90},
        (0, -1): {(0, 4): 200, (10, 26): 90},
        (0, 1): {(0, 6): 200},  # right: the right dot falls off
        (0, 0): {(0, 5): 200, (10, 27): 90},
    }.items():
        moved = evaluation.shifted(x, rows, cols).reshape(28, 28)
        assert {tuple(map(int, i)): int(moved[tuple(i)]) for i in np.argwhere(moved)} == dots


def test_shift_average_is_the_mean_answer_over_the_digit_and_its_four_one_pixel_shifts(
    trained: object,
) -> None:
    x = synthetic_digits(64, seed=3)[0].reshape(64, -1)
    images = x.reshape(-1, 28, 28)
    views = [x]
    for axis, step in ((1, -1), (1, 1), (2, -1), (2, 1)):  # np.roll, then blank what wrapped round
        moved = np.roll(images, step, axis=axis)
        edge = [slice(None)] * 3
        edge[axis] = 0 if step == 1 else -1
        moved[tuple(edge)] = 0
        views.append(moved.reshape(64, -1))
    expected = np.mean([trained.predict(v, batch_size=64, verbose=0) for v in views], axis=0)
    np.testing.assert_allclose(evaluation.predict_probs(trained, x, shift_average=True), expected, atol=1e-6)
    plain = evaluation.predict_probs(trained, x, shift_average=False)
    np.testing.assert_allclose(plain, trained.predict(x, batch_size=64, verbose=0), atol=1e-6)
    assert not np.allclose(plain, expected, atol=1e-3)


def test_the_evaluate_stage_averages_over_shifts_when_its_param_says_so(
    model_file: Path, processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Off, the default, evaluate's probabilities are the model's own: the `evaluated` tests.)"""
    params = default_params()
    params["evaluate"]["shift_average"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    outputs = ["--metrics", "m.json", "--predictions", "p.csv", "--probs", "probs.npz"]
    inputs = ["--model", str(model_file), "--test", str(processed / "test.npz")]
    monkeypatch.setattr(
        sys, "argv", ["evaluate", *inputs, "--own-test", str(processed / "own_test.npz"), *outputs]
    )
    evaluate.main()
    probs = np.load(tmp_path / "probs.npz", allow_pickle=False)["probs"]
    model, x = inference.load_model(model_file), _xy(processed, "test")[0]
    np.testing.assert_allclose(probs, evaluation.predict_probs(model, x, shift_average=True), atol=1e-6)
    assert not np.allclose(probs, evaluation.predict_probs(model, x, shift_average=False), atol=1e-6)


def test_the_model_follows_the_bar_that_defines_each_class(trained: object) -> None:
    """Synthetic class c is a bright bar at row 2c+4; moving the bar moves the prediction."""
    rng = np.random.default_rng(11)
    noise = rng.integers(0, 60, size=(28, 28), dtype=np.uint8)
    predicted = []
    for c in range(10):
        image = noise.copy()
        image[2 * c + 4, 3:25] = 255
        predicted.append(int(trained.predict(image.reshape(1, 784), verbose=0).argmax()))
    assert predicted == list(range(10))
