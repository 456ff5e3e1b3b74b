"""The DVC loop keeps what you chose and loses no data: the real `dvc` and `git` on copies of
the tiny baseline (tests/conftest.py), one case of issue 25 per test.

- keep: an applied experiment stays the default for every later `dvc exp run`;
- data: each dataset's raw files are their own output, the catalogue is read as params;
- deps: editing any module reruns exactly the stages that import it, and no stage loads a
  library it does not work with;
- dry and gc: what would rerun, and a clean-up that keeps every experiment;
- floats: a `-S` float that dvc.lock would change is refused in one line.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.commands import dvc, git, output, ran, run
from tests.support.data import FILE_NAMES, add_to_catalogue, catalogue_entry, write_dataset
from tests.support.params import set_params
from tests.support.paths import FIGURES, METRICS, MODEL, RAW_ROOT, ROOT, TINY_DATASET
from tests.support.projects import baseline_copy
from tests.support.stages import stage_command

pytestmark = pytest.mark.slow  # real DVC runs and training subprocesses

STAGES = ("fetch", "preprocess", "train", "evaluate", "plot")


@pytest.fixture
def copy(tmp_path: Path, tiny_baseline: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the committed tiny baseline: (project, environment)."""
    return baseline_copy(tiny_baseline, tmp_path / "copy", TRAIN_THREADS="1")


def workspace(proj: Path, env: dict[str, str], *args: str, check: bool = True):
    """`python -m mnist_classifier.workspace <args>`, the project's own copy, as make runs it."""
    return run(proj, sys.executable, "-m", "mnist_classifier.workspace", *args, env=env, check=check)


def restored(text: str) -> set[str]:
    """The stages DVC's output says came back from the run cache."""
    import re

    return set(re.findall(r"Stage '(\w+)' is cached - skipping run", text))


def metrics(proj: Path) -> dict:
    return json.loads((proj / METRICS).read_text())


def composed(proj: Path) -> dict:
    """conf/'s composition in the project, as `dvc exp run` makes it."""
    from mnist_classifier.composition import compose

    return compose(conf_dir=proj / "conf")


# --- keep -----------------------------------------------------------------------------------


def test_a_kept_experiment_is_where_every_later_run_starts_and_gc_keeps_it(
    copy: tuple[Path, dict[str, str]],
) -> None:
    """The README's recipe: run one, keep it, run another with one param changed: the second
    starts from the kept params (3 epochs), not conf/'s (2), and trains nothing new. Then
    `make gc` reclaims space and both experiments can still be applied."""
    proj, env = copy
    dvc(proj, "exp", "run", "-n", "e3", "-S", "epochs=3", env=env)
    e3 = json.loads(git(proj, "show", f"{_ref(proj, 'e3')}:{METRICS}"))
    assert e3 != json.loads(git(proj, "show", f"HEAD:{METRICS}"))  # not the baseline's 2 epochs

    out = workspace(proj, env, "keep", "e3").stdout
    assert "e3 is the default now (epochs=3)" in out, out
    assert git(proj, "status", "--porcelain", "--untracked-files=no") == ""  # all of it committed
    assert git(proj, "log", "-1", "--format=%s").strip() == "keep e3: epochs=3"
    assert yaml.safe_load((proj / "conf/model/mlp.yaml").read_text())["epochs"] == 3
    assert composed(proj) == yaml.safe_load((proj / "params.yaml").read_text())
    assert metrics(proj) == e3
    assert "Data and pipelines are up to date" in output(dvc(proj, "status", env=env))

    later = output(dvc(proj, "exp", "run", "-n", "samples3", "-S", "plot.samples=3", env=env))
    assert ran(later) == {"plot"}, later  # train and evaluate unchanged: the kept model stays
    params = yaml.safe_load(git(proj, "show", f"{_ref(proj, 'samples3')}:params.yaml"))
    assert (params["epochs"], params["plot"]["samples"]) == (3, 3)
    assert json.loads(git(proj, "show", f"{_ref(proj, 'samples3')}:{METRICS}")) == e3

    # make gc, with these experiments in place: it reclaims what nothing uses (a model trained
    # in the workspace and given up) and keeps every experiment applicable, and the baseline.
    models = {name: _model_md5(proj, name) for name in ("e3", "samples3")}
    git(proj, "checkout", "--", ".")
    run(proj, sys.executable, "-m", "mnist_classifier.composition", "epochs=4", env=env)
    dvc(proj, "repro", env=env)
    git(proj, "checkout", "--", ".")
    dvc(proj, "checkout", env=env)
    out = workspace(proj, env, "gc").stdout
    before, after = (float(x) for x in out.split("cache ")[1].split(" MB;")[0].split(" MB -> "))
    assert after < before, out
    for name, md5 in models.items():
        dvc(proj, "exp", "apply", name, env=env)
        assert hashlib.md5((proj / MODEL).read_bytes()).hexdigest() == md5, name
    git(proj, "checkout", "--", ".")
    dvc(proj, "checkout", env=env)
    assert "Data and pipelines are up to date" in output(dvc(proj, "status", env=env))


def test_keep_refuses_in_one_line_and_changes_nothing(copy: tuple[Path, dict[str, str]]) -> None:
    proj, env = copy
    head = git(proj, "rev-parse", "HEAD")
    for args, needle in [
        (("keep", "no-such-experiment"), "`dvc exp apply no-such-experiment` failed"),
    ]:
        proc = workspace(proj, env, *args, check=False)
        assert proc.returncode == 1 and needle in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    conf = proj / "conf" / "config.yaml"
    conf.write_text(conf.read_text() + "# edited\n")
    proc = workspace(proj, env, "keep", "anything", check=False)
    assert proc.returncode == 1 and "uncommitted changes (conf/config.yaml)" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert git(proj, "rev-parse", "HEAD") == head


def _model_md5(proj: Path, name: str) -> str:
    """The model's md5 in experiment `name`'s dvc.lock."""
    lock = yaml.safe_load(git(proj, "show", f"{_ref(proj, name)}:dvc.lock"))
    return lock["stages"]["train"]["outs"][0]["md5"]


def _ref(proj: Path, name: str) -> str:
    """The git ref DVC keeps experiment `name` under."""
    refs = git(proj, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    return next(r for r in refs if r.endswith(f"/{name}"))


# --- data -----------------------------------------------------------------------------------


def test_a_comment_a_new_entry_or_a_new_mirror_in_the_catalogue_reruns_nothing(
    copy: tuple[Path, dict[str, str]],
) -> None:
    proj, env = copy
    catalogue = proj / "datasets.yaml"
    entries = yaml.safe_load(catalogue.read_text())
    entries[TINY_DATASET]["mirrors"] = ["https://example.invalid/tiny/"]
    catalogue.write_text("# a comment\n" + yaml.safe_dump(entries, sort_keys=False))
    add_to_catalogue(catalogue, "other", catalogue_entry(dict.fromkeys(FILE_NAMES, "0" * 64)))
    assert "Data and pipelines are up to date" in output(dvc(proj, "status", env=env))
    proc = dvc(proj, "repro", env=env)
    assert ran(output(proc)) == set(), output(proc)


def _second_dataset(proj: Path, mirror: Path) -> dict[str, str]:
    """Another tiny dataset, `tiny2`, in the mirror and the catalogue (committed)."""
    shas = write_dataset(mirror / "tiny2", n_train=600, n_test=200, seed=7)
    add_to_catalogue(proj / "datasets.yaml", "tiny2", catalogue_entry(shas))
    git(proj, "commit", "-qam", "tiny2")
    return shas


def test_switching_datasets_and_back_fetches_nothing_the_second_time(
    copy: tuple[Path, dict[str, str]],
) -> None:
    proj, env = copy
    mirror = Path(env["DATA_MIRROR"])
    _second_dataset(proj, mirror)
    first = output(dvc(proj, "exp", "run", "-S", "dataset=tiny2", env=env))
    assert {"fetch", "preprocess", "train"} <= ran(first), first
    tiny = proj / RAW_ROOT / TINY_DATASET
    assert sorted(p.name for p in tiny.iterdir()) == sorted(FILE_NAMES.values())  # not deleted

    shutil.rmtree(mirror)  # offline from here on: nothing can be downloaded
    back = output(dvc(proj, "exp", "run", "-S", f"dataset={TINY_DATASET}", env=env))
    assert "fetch" not in ran(back), back
    assert {"fetch", "preprocess", "train", "evaluate"} <= restored(back), back
    again = output(dvc(proj, "exp", "run", "-S", "dataset=tiny2", env=env))
    assert "fetch" not in ran(again) and "fetch" in restored(again), again


def test_a_failed_fetch_leaves_the_previous_raw_data_in_place(copy: tuple[Path, dict[str, str]]) -> None:
    proj, env = copy
    tiny = proj / RAW_ROOT / TINY_DATASET
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny.iterdir()}
    shas = _second_dataset(proj, proj.parent / "elsewhere")  # not in the mirror DVC is given
    assert len(shas) == 4
    proc = dvc(proj, "exp", "run", "-S", "dataset=tiny2", env=dict(env, FETCH_TIMEOUT="5"), check=False)
    assert proc.returncode != 0 and "fetch: error:" in output(proc), output(proc)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny.iterdir()}
    assert after == before
    git(proj, "checkout", "--", "params.yaml")  # `dvc exp run` left dataset=tiny2 there
    assert "Data and pipelines are up to date" in output(dvc(proj, "status", env=env))


# --- deps -----------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    """The mnist_classifier modules a file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnist_classifier"):
            if node.module == "mnist_classifier":
                found |= {f"mnist_classifier/{a.name}.py" for a in node.names}
            else:
                found.add(node.module.replace(".", "/") + ".py")
            found.add("mnist_classifier/__init__.py")
        elif isinstance(node, ast.Import):
            found |= {a.name.replace(".", "/") + ".py" for a in node.names if a.name.startswith("mnist_")}
    return found


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen and (ROOT / path).exists():
            seen.add(path)
            todo += _imports(ROOT / path)
    return seen


def test_editing_a_module_reruns_exactly_the_stages_that_import_it(
    copy: tuple[Path, dict[str, str]],
) -> None:
    """Each module of the package, edited in turn (a comment appended): `dvc status` names the
    stages whose import closure holds it, and no other; tool-side modules rerun nothing."""
    proj, env = copy
    users = {stage: _closure(f"stages/{stage}.py") for stage in STAGES}
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "mnist_classifier").rglob("*.py"))
    assert "mnist_classifier/composition.py" in modules and "mnist_classifier/workspace.py" in modules
    from dvc.repo import Repo

    seen = {}
    for module in modules:
        path = proj / module
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        try:
            with Repo(str(proj)) as repo:  # what `dvc status` runs, without a CLI start-up each time
                seen[module] = sorted(name.rsplit(":", 1)[-1] for name in repo.status())
        finally:
            path.write_bytes(original)
    expected = {m: sorted(s for s in STAGES if m in users[s]) for m in modules}
    assert seen == expected
    assert "Data and pipelines are up to date" in output(dvc(proj, "status", env=env))  # all undone
    for tool in (
        "composition",
        "workspace",
        "compare",
        "report",
        "pipeline",
        "tuning/command",
        "tuning/search",
    ):
        assert seen[f"mnist_classifier/{tool}.py"] == [], tool


# Libraries a stage must not load, and an output it writes: each library is one the stage
# does not work with, pulled in by another as an optional extra (mnist_classifier/imports.py)
# or by the other backend, 0.2-0.8 s of import each on the 2-core test machine. (requests
# loads in train: DVC's Studio client, which dvclive imports, needs it; so does TensorFlow.)
NOT_LOADED = [
    pytest.param(
        "train", "jax", MODEL, ("tensorflow", "pandas", "pynvml", "sklearn", "matplotlib"), id="train"
    ),
    pytest.param(
        "train",
        "tensorflow",
        MODEL,
        ("jax", "pandas", "pynvml", "sklearn", "matplotlib"),
        id="train-tensorflow",
    ),
    pytest.param(
        "evaluate",
        None,
        METRICS,
        ("tensorflow", "pandas", "requests", "matplotlib", "dvclive"),
        id="evaluate",
    ),
    pytest.param(
        "plot", None, FIGURES, ("tensorflow", "keras", "jax", "sklearn", "scipy", "requests"), id="plot"
    ),
]


@pytest.mark.parametrize("stage, backend, out, libraries", NOT_LOADED)
def test_each_stage_loads_no_library_it_does_not_work_with(
    copy: tuple[Path, dict[str, str]], stage: str, backend: str | None, out: Path, libraries: tuple[str, ...]
) -> None:
    """The stage's command as DVC runs it (dvc.yaml's cmd), its output removed first: it writes
    the output again, and when it ends none of the libraries is in sys.modules."""
    proj, env = copy
    if backend:
        set_params(proj / "params.yaml", backend=backend)
    shutil.rmtree(proj / out) if (proj / out).is_dir() else (proj / out).unlink()
    _, _, module, *args = stage_command(stage)  # python -m <module> <args>
    code = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: print('loaded', sorted(m for m in {libraries!r} if m in sys.modules)))\n"
        f"sys.argv = [{module!r}, *{args!r}]\n"
        f"runpy.run_module({module!r}, run_name='__main__')\n"
    )
    proc = run(proj, sys.executable, "-c", code, env=env)
    assert proc.stdout.splitlines()[-1] == "loaded []", proc.stdout
    assert (proj / out).exists()


# --- dry -----------------------------------------------------------------------------


def test_dry_says_what_would_rerun_and_changes_nothing(copy: tuple[Path, dict[str, str]]) -> None:
    proj, env = copy
    params = (proj / "params.yaml").read_bytes()
    out = workspace(proj, env, "dry", "epochs=3").stdout
    assert "train: would run (its inputs changed)" in out, out
    assert "evaluate: would run" in out and "plot: would run" in out
    assert "fetch:" not in out and "preprocess:" not in out
    assert "params.yaml would change: epochs=3" in out
    assert "plot: would run (its inputs changed)" in workspace(proj, env, "dry", "plot.samples=3").stdout
    assert "nothing would rerun" in workspace(proj, env, "dry").stdout
    assert (proj / "params.yaml").read_bytes() == params
    assert "Data and pipelines are up to date" in output(dvc(proj, "status", env=env))

    bad = workspace(proj, env, "dry", "cnn.dropout=0.3", check=False)  # the MLP is chosen
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "conf/" in bad.stderr, bad.stderr
    assert (proj / "params.yaml").read_bytes() == params


# --- floats ---------------------------------------------------------------------------------


def test_a_float_dvc_lock_would_change_is_refused_in_one_line(copy: tuple[Path, dict[str, str]]) -> None:
    proj, env = copy
    proc = dvc(proj, "exp", "run", "-S", "learning_rate=6.466422717414563e-05", env=env, check=False)
    text = output(proc)
    assert proc.returncode != 0, text
    line = next(ln for ln in text.splitlines() if ln.startswith("train: error:"))
    assert "`learning_rate` is 6.466422717414563e-05" in line and "-S learning_rate=6.46642e-05" in line
    assert "Traceback" not in text
    ok = output(dvc(proj, "exp", "run", "-S", "learning_rate=6.46642e-05", env=env))
    assert "train" in ran(ok)
    assert "Data and pipelines are up to date" in output(dvc(proj, "status", env=env))
