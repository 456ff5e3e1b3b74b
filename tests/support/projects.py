"""Project copies to run DVC in: the pipeline's files in a fresh git repo, the tiny project on
its synthetic dataset, and the committed baseline that pipeline tests copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.commands import dvc, git, output, tool_env
from tests.support.data import add_to_catalogue, catalogue_entry, write_dataset
from tests.support.params import configure
from tests.support.paths import PROJECT_FILES, ROOT


def copy_project(dest: Path) -> Path:
    """Copy the pipeline's own files into a fresh git repo at dest, committed."""
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "project")
    return dest


# Short trainings and small figures: what the tiny projects run with.
TINY = {
    "config": {"dataset": "tiny", "plot": {"samples": 4, "predictions": 4, "misclassified": 4}},
    "mlp": {"epochs": 2, "batch_size": 64},
    "cnn": {"epochs": 1, "batch_size": 64, "cnn": {"filters": [4], "convs": 1, "dense_units": 8}},
}


def tiny_project(tmp: Path) -> tuple[Path, Path]:
    """The project in tmp/project, on a tiny synthetic dataset served from tmp/mirror, with
    short training and small figures (conf/ and params.yaml both): (project, mirror).
    Nothing is committed beyond the copy."""
    shas = write_dataset(tmp / "mirror" / "tiny", n_train=600, n_test=200)
    proj = copy_project(tmp / "project")
    add_to_catalogue(proj / "datasets.yaml", "tiny", catalogue_entry(shas))
    configure(proj, **TINY)
    return proj, tmp / "mirror"


BUILD_LOG = "repro.log"  # beside the baseline's project: what its first `dvc repro` printed


def build_baseline(root: Path) -> None:
    """tiny_project() in root, with its baseline `dvc repro` committed (dvc.lock in git) and
    that first repro's output in root/BUILD_LOG (a test of the first run reads it there)."""
    proj, mirror = tiny_project(root)
    first = dvc(proj, "repro", env=tool_env(DATA_MIRROR=str(mirror), TRAIN_THREADS="1"))
    (root / BUILD_LOG).write_text(output(first))
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "tiny baseline")


def baseline_copy(baseline: Path, dest: Path, **env: str) -> tuple[Path, dict[str, str]]:
    """A copy of a build_baseline() root at dest, git repo, workspace and DVC cache all:
    (its project, an environment whose DATA_MIRROR is its mirror, plus env). A copy takes a
    second where the baseline's `dvc repro` takes 20 (each of a run's stages imports Keras)."""
    shutil.copytree(baseline, dest, symlinks=True, ignore=shutil.ignore_patterns("built"))
    return dest / "project", tool_env(DATA_MIRROR=str(dest / "mirror"), **env)
