"""Fixtures shared by the test modules."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest
import yaml

from mnist_classifier import catalogue
from mnist_classifier.dataset import preprocess
from tests.support.data import catalogue_entry, write_dataset
from tests.support.projects import build_baseline


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, catalogue.Dataset]:
    """A tiny synthetic dataset's four IDX files and its catalogue entry."""
    root = tmp_path_factory.mktemp("tiny")
    shas = write_dataset(root / "raw", n_train=500, n_test=100)
    path = root / "datasets.yaml"
    path.write_text(yaml.safe_dump({"tiny": catalogue_entry(shas)}))
    return root / "raw", catalogue.load_dataset(path, "tiny")


@pytest.fixture(scope="session")
def processed(tiny_raw: tuple[Path, catalogue.Dataset]) -> Path:
    """The tiny dataset run through the real preprocess(): processed/{train,val,test}.npz."""
    raw, dataset = tiny_raw
    out = raw.parent / "processed"
    preprocess(dataset, raw, out, val_fraction=0.2, seed=0)
    return out


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MLP trained on printed digits in MNIST's form, saved as the train stage does:
    a model the picture tests (predict's, and pictures as people write them) read with."""
    import numpy as np

    from mnist_classifier import training
    from tests.support.params import make_train_params
    from tests.support.pictures import mnist_form

    x, labels = mnist_form(1000, seed=0)
    y = np.eye(10, dtype=np.float32)[labels]
    p = make_train_params(epochs=30, batch_size=32)
    model = training.train(p, (x.reshape(-1, 784), y), (x[:100].reshape(-1, 784), y[:100]))
    path = tmp_path_factory.mktemp("model") / "printed.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def jax_compilation_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One JAX compilation cache for the session's workers, in its temporary root, not the
    user's: every JAX training after the first with the same shapes loads its compiled steps
    (mnist_classifier.backend.jax_compilation_cache), and no run of the suite reads another's."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(shared / "jax-cache")


@pytest.fixture(scope="session")
def tiny_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with its baseline run committed (build_baseline()), which the pipeline
    modules start from by taking a copy (helpers.baseline_copy()): built once per session.
    Under pytest-xdist the workers share one: whichever asks first builds it, under a lock in
    the session's temporary root, and the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base  # one per session
    root = shared / "baseline"
    with open(shared / "baseline.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "built").exists():  # absent, or a build that failed midway
            shutil.rmtree(root, ignore_errors=True)
            build_baseline(root)
            (root / "built").touch()
    return root


# Seconds the slow tests of each module take in a fresh-clone `make test` (benchmarks/
# suite_timeline.py, 2026-12-01, 2 cores): only their order matters. A module not listed
# counts 10 s a slow test.
SLOW_SECONDS = {
    "tests/pipeline/test_tuning.py": 360,
    "tests/pipeline/test_experiments.py": 250,
    "tests/pipeline/test_loop.py": 220,
    "tests/pipeline/test_dvc_workflow.py": 190,
    "tests/pipeline/test_models.py": 120,
    "tests/pipeline/test_faults.py": 95,
    "tests/unit/test_cnn.py": 95,
    "tests/tools/test_serve.py": 85,
    "tests/repo/test_cnn_frontier.py": 67,
    "tests/pipeline/test_releases.py": 53,
    "tests/pipeline/test_failures.py": 52,
    "tests/pipeline/test_own_data.py": 45,
    "tests/unit/test_semantics.py": 51,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, a whole module's in one pytest-xdist worker's share, otherwise in
    their order. `make test` runs `-n auto --dist worksteal`, which hands worker i the i-th
    contiguous share of this list and lets a worker that runs out take the end of another's
    queue. Sorted slow-first alone, the first share held every minute-long test and the last
    of them ran alone (94 s of the other core idle, 2026-12-01); dealt one test at a time, a
    module's tests landed on both workers and each built the module's fixtures (a search of
    four trials, a trained CNN) for itself. So modules are dealt, longest first, each to the
    share with the least so far; short tests fill the shares and are what gets shared. The
    first share starts building the tiny baseline at once; the others start with modules that
    do not need it, instead of waiting for it (22 s of a core, 2026-12-01)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    modules: dict[str, list[pytest.Item]] = {}
    fast = []
    for item in items:
        if item.get_closest_marker("slow"):
            modules.setdefault(item.nodeid.split("::")[0], []).append(item)
        else:
            fast.append(item)
    sizes, left = [], len(items)
    for i in range(workers):  # the shares xdist's worksteal scheduler cuts, in its order
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    dealt: list[list[str]] = [[] for _ in range(workers)]
    load = [0] * workers

    def seconds(module: str) -> int:
        return SLOW_SECONDS.get(module, 10 * len(modules[module]))

    def waits_for_baseline(module: str) -> bool:
        return any("tiny_baseline" in item.fixturenames for item in modules[module])

    for module in sorted(modules, key=seconds, reverse=True):
        lightest = load.index(min(load))
        dealt[lightest].append(module)
        load[lightest] += seconds(module)
    shares = [
        [
            item
            for module in (names if i == 0 else sorted(names, key=waits_for_baseline))
            for item in modules[module]
        ]
        for i, names in enumerate(dealt)
    ]
    ordered = []
    for share, size in zip(shares, sizes):
        take = max(0, size - len(share))
        ordered += share + fast[:take]
        fast = fast[take:]
    items[:] = ordered + fast


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A pytest-xdist worker ends here without the interpreter's teardown, as the project's
    commands do (mnist_classifier.cli.exit_now): its results went to the controller with
    pytest_sessionfinish, and with Keras, TensorFlow and JAX loaded the teardown outlasted
    xdist's 10 s wait for a worker to exit, 14 s of every run's end (benchmarks/RESULTS.md)."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        from mnist_classifier.cli import exit_now

        exit_now(0)
