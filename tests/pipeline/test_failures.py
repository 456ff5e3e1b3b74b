"""Bad data, bad params and hostile files: each real stage, run as DVC runs it, must fail.

It must exit with status 1, one clear message naming the culprit and the fix (no traceback), and
nothing half-written at its output path. Tiny synthetic data only; no network but 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_classifier.composition import with_values
from mnist_classifier.config import lookup
from tests.support.commands import dvc, output, run, tool_env
from tests.support.data import FILE_NAMES, add_to_catalogue, catalogue_entry, idx_bytes, write_dataset
from tests.support.params import default_params, set_params
from tests.support.paths import MODEL, OUTPUTS, PROBS, PROCESSED, RAW, RAW_ROOT, ROOT
from tests.support.projects import copy_project
from tests.support.servers import http_mirror
from tests.support.stages import leftovers, run_stage, stage_command


def assert_clean_failure(proc: subprocess.CompletedProcess, stage: str, project: Path, *needles: str) -> None:
    """Exit 1, one `<stage>: error:` message holding every needle, no traceback, no output."""
    err = proc.stderr
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    assert err.count(f"{stage}: error:") == 1, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in stderr:\n{err}"
    for path in OUTPUTS[stage]:
        assert leftovers(project, path) == [], f"{stage} left {leftovers(project, path)}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A mirror root holding a tiny dataset at <root>/tiny/, and its checksums."""
    root = tmp_path_factory.mktemp("mirror")
    return root, write_dataset(root / "tiny", n_train=100, n_test=40)


@pytest.fixture()
def project(tmp_path: Path, dataset: tuple[Path, dict[str, str]]) -> Path:
    """A working directory with the default params and the real datasets.yaml, set to the tiny dataset."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**default_params(), "dataset": "tiny"}))
    (tmp_path / "datasets.yaml").write_text((ROOT / "datasets.yaml").read_text())
    add_to_catalogue(tmp_path / "datasets.yaml", "tiny", catalogue_entry(dataset[1]))
    return tmp_path


def set_mirrors(project: Path, shas: dict[str, str], mirrors: list[str]) -> None:
    add_to_catalogue(project / "datasets.yaml", "tiny", catalogue_entry(shas, mirrors))


# ---------------------------------------------------------------- data: fetch


@pytest.fixture()
def dead_ports() -> Iterator[tuple[int, int]]:
    """A closed port (connection refused) and one that accepts but never answers."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or replies
    try:
        yield refused_port, silent.getsockname()[1]
    finally:
        silent.close()


def test_every_mirror_unreachable_lists_each_and_explains_data_mirror(
    project: Path, dataset: tuple[Path, dict[str, str]], dead_ports: tuple[int, int]
) -> None:
    refused, silent = (f"http://127.0.0.1:{port}/tiny" for port in dead_ports)
    set_mirrors(project, dataset[1], [refused, silent])
    nowhere = project / "no-such-mirror"
    proc = run_stage(project, "fetch", FETCH_TIMEOUT="1", DATA_MIRROR=str(nowhere))
    name = FILE_NAMES["train_images"]
    assert_clean_failure(
        proc,
        "fetch",
        project,
        f"could not get {name} of dataset 'tiny'. Tried:",
        "DATA_MIRROR=<dir>",
        "`DATA_MIRROR=/path/to/data dvc repro`",
    )
    tried = proc.stderr.split("Tried:\n", 1)[1].splitlines()[:3]
    for line, (source, why) in zip(
        tried,
        [
            (f"{nowhere}/tiny", "No such file or directory"),
            (refused, "Connection refused"),
            (silent, "within 1 s"),
        ],
    ):
        assert line.startswith(f"  {source}/{name}: ") and why in line, tried  # FETCH_TIMEOUT honoured


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("corrupt", "served different bytes (SHA-256"),
        ("html", "served an HTML page (SHA-256"),
        ("truncated", "cut short: got"),
        ("404", "HTTP 404"),
    ],
)
def test_bad_mirror_is_rejected_and_the_next_one_used(
    project: Path, dataset: tuple[Path, dict[str, str]], mode: str, reason: str
) -> None:
    root, shas = dataset
    with http_mirror(root, mode) as bad, http_mirror(root) as good:
        set_mirrors(project, shas, [f"{bad}/tiny", f"{good}/tiny"])
        proc = run_stage(project, "fetch", FETCH_TIMEOUT="5")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "error:" not in proc.stderr, proc.stderr
    for role, name in FILE_NAMES.items():
        assert f"{bad}/tiny/{name}: {reason}" in proc.stderr, proc.stderr
        assert hashlib.sha256((project / RAW / name).read_bytes()).hexdigest() == shas[role]
    assert sorted(p.name for p in (project / RAW).iterdir()) == sorted(FILE_NAMES.values())
    assert [p.name for p in (project / RAW).parent.iterdir()] == [RAW.name]  # no temp dir left


# ---------------------------------------------------------------- data: preprocess


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def _images(n: int = 100, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    return np.zeros((n, *shape), dtype=np.uint8)


def _labels(n: int = 100, top: int = 9) -> np.ndarray:
    return (np.arange(n) % (top + 1)).astype(np.uint8)


BAD_RAW_FILES = {
    # case: (role to replace, its new bytes, what the message must say)
    "gzip-truncated": (
        "train_images",
        lambda good: good[: len(good) // 2],
        ["not a complete gzip file", "rerun `dvc repro fetch`"],
    ),
    "not-gzip": (
        "train_labels",
        lambda good: b"<html>not found</html>",
        ["not a complete gzip file", "rerun `dvc repro fetch`"],
    ),
    "wrong-magic": (
        "train_images",
        lambda good: _gz(idx_bytes(_images(), 0x801)),
        ["magic number 0x00000801, expected 0x00000803", "right file"],
    ),
    "27x28-images": (
        "train_images",
        lambda good: _gz(idx_bytes(_images(shape=(27, 28)), 0x803)),
        ["images are 27x28, expected 28x28"],
    ),
    "short-payload": (
        "test_images",
        lambda good: _gz(idx_bytes(_images(40), 0x803)[:-100]),
        ["header says 40x28x28 (31376 bytes)", "31276 bytes", "truncated or corrupt"],
    ),
    "labels-wrong-magic": (
        "train_labels",
        lambda good: _gz(idx_bytes(_labels(), 0x803)),
        ["train-labels-idx1-ubyte.gz: magic number 0x00000803, expected 0x00000801"],
    ),
    "label-10": (
        "train_labels",
        lambda good: _gz(idx_bytes(_labels(top=10), 0x801)),
        ["label 10 is outside 0-9", "10 classes"],
    ),
    "count-mismatch": (
        "train_labels",
        lambda good: _gz(idx_bytes(_labels(99), 0x801)),
        ["has 100 images but", "has 99 labels", "do not belong together"],
    ),
}


@pytest.mark.parametrize("case", BAD_RAW_FILES)
def test_bad_raw_file_is_refused_by_preprocess(
    project: Path, dataset: tuple[Path, dict[str, str]], case: str
) -> None:
    role, make, needles = BAD_RAW_FILES[case]
    write_dataset(project / RAW, n_train=100, n_test=40)
    target = project / RAW / FILE_NAMES[role]
    target.write_bytes(make(target.read_bytes()))
    proc = run_stage(project, "preprocess")
    assert_clean_failure(proc, "preprocess", project, FILE_NAMES[role], *needles)


def test_good_raw_files_pass_preprocess(project: Path) -> None:
    """The control for the cases above: the same files, unharmed, are accepted."""
    write_dataset(project / RAW, n_train=100, n_test=40)
    proc = run_stage(project, "preprocess")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (project / PROCESSED).iterdir()) == [
        "own_test.npz",  # no own set mixed in: it names none
        "test.npz",
        "train.npz",
        "val.npz",
    ]


# ---------------------------------------------------------------- data: catalogue


@pytest.mark.parametrize("stage", ["fetch", "preprocess"])
def test_unknown_dataset_lists_the_known_ones(project: Path, stage: str) -> None:
    set_params(project / "params.yaml", dataset="mnits")
    proc = run_stage(project, stage)
    assert_clean_failure(
        proc,
        stage,
        project,
        "dataset 'mnits' is not in datasets.yaml",
        "known datasets: fashion_mnist, mnist, tiny",
        "Set `dataset` in params.yaml",
    )


@pytest.mark.parametrize("sha", [None, "", "abc123", "g" * 64], ids=["absent", "empty", "short", "not-hex"])
def test_catalogue_entry_without_a_valid_checksum_is_refused(
    project: Path, dataset: tuple[Path, dict[str, str]], sha: str | None
) -> None:
    root, shas = dataset
    entry = catalogue_entry(shas, [str(root / "tiny")])  # a mirror that would serve the file
    if sha is None:
        del entry["files"]["train_labels"]["sha256"]
    else:
        entry["files"]["train_labels"]["sha256"] = sha
    add_to_catalogue(project / "datasets.yaml", "tiny", entry)
    proc = run_stage(project, "fetch")
    assert_clean_failure(
        proc,
        "fetch",
        project,
        "datasets.yaml: tiny.files.train_labels.sha256",
        "missing or not 64 hex digits",
        f"sha256sum {FILE_NAMES['train_labels']}",
    )


# ---------------------------------------------------------------- params


@pytest.fixture
def heavy_modules_refused(tmp_path: Path) -> str:
    """A PYTHONPATH on which importing TensorFlow, Keras, matplotlib, scikit-learn or dvclive
    fails: a stage that loads one before checking its params reports that instead."""
    poison = tmp_path / "poison"
    poison.mkdir()
    for name in ("tensorflow", "keras", "matplotlib", "sklearn", "dvclive", "jax"):
        (poison / f"{name}.py").write_text(
            f"raise ImportError('{name} imported before params were checked')\n"
        )
    return os.pathsep.join([str(poison), str(ROOT)])


TRAIN_ALLOWED = "one of adam, adamw, nadam, rmsprop, sgd"
BAD_PARAMS = [
    ("train", "epochs", 0, "an integer >= 1"),
    ("train", "epochs", -1, "an integer >= 1"),
    ("train", "epochs", "ten", "an integer >= 1"),
    ("train", "epochs", 2.5, "an integer >= 1"),
    ("train", "batch_size", 0, "an integer >= 1"),
    ("train", "mlp.dropout", -0.1, "a number in [0, 1)"),
    ("train", "mlp.dropout", 1.0, "a number in [0, 1)"),
    ("train", "mlp.dropout", 1.5, "a number in [0, 1)"),
    ("train", "learning_rate", 0, "a number in (0, inf)"),
    ("train", "learning_rate", -0.001, "a number in (0, inf)"),
    ("train", "learning_rate", "fast", "a number in (0, inf)"),
    ("train", "mlp.hidden_units", [], "a non-empty list of positive integers"),
    ("train", "mlp.hidden_units", [128, 0], "a non-empty list of positive integers"),
    ("train", "mlp.hidden_units", 128, "a non-empty list of positive integers"),
    ("train", "optimizer", "adamm", TRAIN_ALLOWED),
    ("train", "lr_schedule", "step", "one of constant, cosine"),
    ("train", "mlp.activation", "rellu", "one of relu, gelu, silu, elu, selu, tanh, sigmoid"),
    ("train", "model", "resnet", "one of mlp, cnn"),
    ("train", "cnn.filters", [], "a non-empty list of positive integers"),
    ("train", "cnn.filters", [32, -1], "a non-empty list of positive integers"),
    ("train", "cnn.filters", [8, 16, 32, 64], "a list of at most 3 positive integers"),
    ("train", "cnn.dense_units", 0, "an integer >= 1"),
    ("train", "cnn.dropout", 1.0, "a number in [0, 1)"),
    ("train", "cnn.augment", "yes", "true or false"),
    ("train", "cnn.augment", 1, "true or false"),
    ("train", "cnn.convs", 0, "an integer >= 1"),
    ("train", "cnn.label_smoothing", 1.0, "a number in [0, 1)"),
    ("train", "cnn.label_smoothing", -0.1, "a number in [0, 1)"),
    ("train", "cnn.kernel", 0, "an integer from 1 to 27"),
    ("train", "cnn.padding", "full", "one of same, valid"),
    ("train", "cnn.order", "pool-conv", "one of conv-pool-bn-relu, conv-bn-relu-pool"),
    ("train", "cnn.flat_dropout", 1.0, "a number in [0, 1)"),
    ("train", "warmup_epochs", -1, "an integer >= 0"),
    ("train", "validation", "never", "one of every_epoch, last_epoch"),
    ("evaluate", "evaluate.shift_average", "yes", "true or false"),
    ("preprocess", "val_fraction", 0, "a number in (0, 1)"),
    ("preprocess", "val_fraction", 1, "a number in (0, 1)"),
    ("preprocess", "val_fraction", 1.5, "a number in (0, 1)"),
    ("preprocess", "val_fraction", -0.1, "a number in (0, 1)"),
    ("preprocess", "seed", -1, "an integer from 0 to 4294967295"),
    ("train", "seed", 2**32, "an integer from 0 to 4294967295"),  # past what Keras' seeding takes
]


@pytest.mark.parametrize(
    "stage, key, value, expected", BAD_PARAMS, ids=[f"{k}={v!r}" for _, k, v, _ in BAD_PARAMS]
)
def test_bad_param_fails_fast_naming_key_value_and_range(
    project: Path, heavy_modules_refused: str, stage: str, key: str, value: object, expected: str
) -> None:
    raw = with_values(
        {**default_params("cnn" if key.startswith("cnn.") else "mlp"), "dataset": "tiny"}, {key: value}
    )
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = run_stage(project, stage, PYTHONPATH=heavy_modules_refused)
    assert_clean_failure(
        proc,
        stage,
        project,
        f"params.yaml: `{key}` is {value!r}",
        f"it must be {expected}",
        f"Fix conf/ or your `-S {key}=...`",
    )


@pytest.mark.parametrize(
    "stage, key",
    [
        ("train", "epochs"),
        ("train", "optimizer"),
        ("train", "mlp.hidden_units"),
        ("train", "model"),
        ("train", "lr_schedule"),
        ("train", "cnn.filters"),
        ("train", "cnn.augment"),
        ("train", "cnn.convs"),
        ("train", "cnn.label_smoothing"),
        ("train", "cnn.order"),
        ("train", "warmup_epochs"),
        ("train", "validation"),
        ("evaluate", "evaluate.shift_average"),
        ("preprocess", "val_fraction"),
        ("fetch", "dataset"),
        ("plot", "plot.samples"),
    ],
)
def test_missing_param_is_named(project: Path, heavy_modules_refused: str, stage: str, key: str) -> None:
    params = {**default_params("cnn" if key.startswith("cnn.") else "mlp"), "dataset": "tiny"}
    *parents, leaf = key.split(".")
    del (lookup(params, ".".join(parents)) if parents else params)[leaf]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage(project, stage, PYTHONPATH=heavy_modules_refused)
    assert_clean_failure(proc, stage, project, f"params.yaml lacks `{key}`; add it")


def test_train_rejects_params_before_importing_tensorflow(project: Path) -> None:
    """The real train stage's main(), in one interpreter: it exits on the param, TF never loaded."""
    set_params(project / "params.yaml", epochs="ten")
    code = (
        "import sys\n"
        f"sys.argv = {stage_command('train')[2:]!r}\n"
        "from mnist_classifier.cli import run_command\n"
        "from stages import train\n"
        "try:\n"
        "    run_command('train', train.main)  # what `python -m stages.train` runs, then exits\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
        "from mnist_classifier.config import read_params, train_params\n"
        "try:\n"
        "    train_params(read_params())\n"
        "except Exception as exc:\n"
        "    from mnist_classifier.errors import PipelineError\n"
        "    print('raised', 'PipelineError' if isinstance(exc, PipelineError) else type(exc).__name__)\n"
        "print('loaded', sorted(m for m in ('tensorflow', 'keras', 'dvclive') if m in sys.modules))\n"
    )
    proc = run(project, sys.executable, "-c", code, env=tool_env(PYTHONPATH=str(ROOT)))
    assert proc.stdout.splitlines() == ["exit 1", "raised PipelineError", "loaded []"], proc.stdout
    assert "`epochs` is 'ten'" in proc.stderr


@pytest.mark.slow
def test_dvc_exp_run_with_a_misspelt_param_fails_clearly(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    before = (project / "params.yaml").read_text()
    proc = dvc(project, "exp", "run", "-S", "epoch=30", check=False, timeout=120)
    out = output(proc)
    assert proc.returncode != 0, out
    assert "Could not override 'epoch'" in out and "not in struct" in out, out
    assert "Traceback" not in out, out
    assert (project / "params.yaml").read_text() == before
    assert not (project / RAW_ROOT).exists() and not (project / PROCESSED).exists()  # no stage ran


# ---------------------------------------------------------------- safety


def crafted_npz(path: Path, marker: Path, n: int = 20) -> None:
    """An .npz whose every array is a pickled object array; unpickling one creates `marker`."""

    class Payload:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = np.empty(n, dtype=object)
    payload[:] = [Payload() for _ in range(n)]
    np.savez(path, **{key: payload for key in ("x", "y", "classes", "probs")})


def test_crafted_npz_really_runs_code_when_pickle_is_allowed(tmp_path: Path) -> None:
    """The control: the payload below is live, so its refusal is what keeps the marker away."""
    marker = tmp_path / "pwned"
    crafted_npz(tmp_path / "evil.npz", marker)
    with np.load(tmp_path / "evil.npz", allow_pickle=True) as data:
        data["x"]
    assert marker.exists()


@pytest.mark.parametrize(
    "stage, crafted",
    [
        ("train", PROCESSED / "train.npz"),
        ("train", PROCESSED / "val.npz"),
        ("evaluate", PROCESSED / "test.npz"),
        ("plot", PROCESSED / "train.npz"),
        ("plot", PROBS),
    ],
    ids=lambda v: str(v),
)
def test_pickled_npz_is_refused_and_never_unpickled(project: Path, stage: str, crafted: Path) -> None:
    marker = project / "pwned"
    for name in ("train", "val", "test"):
        x = np.zeros((20, 784), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[np.arange(20) % 10]
        (project / PROCESSED).mkdir(parents=True, exist_ok=True)
        np.savez(project / PROCESSED / f"{name}.npz", x=x, y=y, classes=np.array(list("0123456789")))
    if stage == "plot":  # the evaluate stage's output, which plot reads
        (project / PROBS).parent.mkdir(parents=True, exist_ok=True)
        np.savez(project / PROBS, probs=np.full((20, 10), 0.1, dtype=np.float32))
    crafted_npz(project / crafted, marker)
    proc = run_stage(project, stage)
    assert_clean_failure(
        proc,
        stage,
        project,
        f"{crafted} holds pickled objects, which are refused",
        "Delete it and rerun `dvc repro`",
    )
    assert not marker.exists()


@pytest.mark.slow
def test_keras_model_with_a_lambda_layer_is_refused(project: Path) -> None:
    """evaluate loads models with safe_mode: a Lambda layer (arbitrary code) is not run."""
    marker = project / "pwned"
    payload = f"lambda x: (open({str(marker)!r}, 'w'), x)[1]"
    build = (
        "import keras\n"
        f"payload = eval({payload!r})\n"
        "model = keras.Sequential([keras.Input((784,)), keras.layers.Lambda(payload),\n"
        "                          keras.layers.Dense(10, activation='softmax')])\n"
        f"model.save({str(project / MODEL)!r})\n"
    )
    (project / MODEL).parent.mkdir(parents=True)
    run(project, sys.executable, "-c", build, env=tool_env(TF_CPP_MIN_LOG_LEVEL="3"))
    marker.unlink(missing_ok=True)  # building the model called the lambda once
    (project / PROCESSED).mkdir(parents=True)
    np.savez(
        project / PROCESSED / "test.npz",
        x=np.zeros((20, 784), dtype=np.float32),
        y=np.eye(10, dtype=np.float32)[np.arange(20) % 10],
        classes=np.array(list("0123456789")),
    )
    np.savez(project / PROCESSED / "own_test.npz", names=np.array([], dtype=str))
    proc = run_stage(project, "evaluate")
    assert_clean_failure(proc, "evaluate", project, f"{MODEL} was refused", "Lambda", "dvc repro train")
    assert not marker.exists()


@pytest.mark.parametrize(
    "file, stage", [("params.yaml", "train"), ("params.yaml", "fetch"), ("datasets.yaml", "fetch")]
)
def test_yaml_with_a_python_tag_is_refused(project: Path, file: str, stage: str) -> None:
    marker = project / "pwned"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    path = project / file
    if file == "params.yaml":
        text = path.read_text().replace("epochs: 20", f"epochs: {tag}")
        text = text.replace("dataset: tiny", f"dataset: {tag}")
    else:
        text = path.read_text() + f"\nevil: {tag}\n"
    assert tag in text
    path.write_text(text)
    proc = run_stage(project, stage)
    assert_clean_failure(
        proc, stage, project, file, "python/object/apply:os.system", "refused", "remove the tag"
    )
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../evil.gz", "../../evil.gz", "sub/evil.gz", "ABSOLUTE", ".."])
def test_catalogue_file_name_cannot_escape_the_raw_folder(
    project: Path, dataset: tuple[Path, dict[str, str]], name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shas = dataset[1]
    if name == "ABSOLUTE":
        name = str(project / "abs" / "evil.gz")
    mirror = tmp_path_factory.mktemp("evil") / "root" / "tiny"
    payload = b"anything at all"
    for where in (mirror.parent.parent, mirror.parent, mirror / "sub"):
        where.mkdir(parents=True, exist_ok=True)
        (where / "evil.gz").write_bytes(payload)  # a mirror that would happily serve the file
    entry = catalogue_entry(shas, [str(mirror)])
    entry["files"]["train_images"] = {"name": name, "sha256": hashlib.sha256(payload).hexdigest()}
    add_to_catalogue(project / "datasets.yaml", "tiny", entry)
    before = sorted(project.rglob("*"))
    proc = run_stage(project, "fetch")
    assert_clean_failure(
        proc, "fetch", project, f"tiny.files.train_images.name is {name!r}", "it must be a plain file name"
    )
    assert sorted(project.rglob("*")) == before
    assert not list(project.rglob("evil.gz"))
