"""Releases: GTO version tags on the commit whose dvc.lock pins the model, fetched back with
`dvc artifacts get` from a real local-folder DVC remote, and served by version."""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.commands import dvc, git, output, run
from tests.support.params import configure
from tests.support.paths import MODEL
from tests.support.projects import baseline_copy
from tests.support.servers import served

pytestmark = pytest.mark.slow  # real DVC runs and training subprocesses


def release(proj: Path, env: dict[str, str], *args: str, check: bool = True) -> str:
    proc = run(proj, sys.executable, "-m", "mnist_classifier.release", *args, env=env, check=check)
    return output(proc) if check else f"{proc.returncode}\n{output(proc)}"


def locked_md5(proj: Path, rev: str) -> str:
    """The model's MD5 in dvc.lock as committed at rev."""
    lock = yaml.safe_load(git(proj, "show", f"{rev}:dvc.lock"))
    return next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == str(MODEL))


def test_two_releases_are_fetched_back_by_version_and_stage(tmp_path: Path, tiny_baseline: Path) -> None:
    proj, env = baseline_copy(tiny_baseline, tmp_path / "copy")
    dvc(proj, "remote", "add", "-d", "store", str(tmp_path / "dvc-store"), env=env)
    git(proj, "commit", "-qam", "a DVC remote")
    assert "tagged mnist-classifier@v1.0.0" in release(proj, env, "1.0.0")

    configure(proj, mlp={"epochs": 3})  # a second model
    dvc(proj, "repro", env=env)
    # Not committed yet: a release would name a commit whose dvc.lock pins another model.
    refused = release(proj, env, "1.1.0", check=False)
    assert refused.startswith("1\n") and "uncommitted changes" in refused and refused.count("error:") == 1
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "three epochs")
    assert "mnist-classifier#prod" in release(proj, env, "1.1.0", "--stage", "prod")
    assert "mnist-classifier@v1.1.0" in git(proj, "tag")
    assert locked_md5(proj, "mnist-classifier@v1.0.0") != locked_md5(proj, "mnist-classifier@v1.1.0")

    for query, tag in (
        (["--rev", "v1.0.0"], "v1.0.0"),
        (["--rev", "v1.1.0"], "v1.1.0"),
        (["--stage", "prod"], "v1.1.0"),
    ):
        out = tmp_path / f"fetched-{'-'.join(query)}"
        dvc(
            tmp_path,
            "artifacts",
            "get",
            str(proj),
            "mnist-classifier",
            *query,
            "-o",
            str(out / "model.keras"),
            env=env,
        )
        got = hashlib.md5((out / "model.keras").read_bytes()).hexdigest()
        assert got == locked_md5(proj, f"mnist-classifier@{tag}"), query

    # The server takes a released version by name, with or without GTO's `v`, and says which
    # it serves (`--rev 1.0.0` was "no release").
    with (
        served("--rev", "1.0.0", "--repo", str(proj), cwd=proj) as (url, _),
        urllib.request.urlopen(f"{url}/info", timeout=10) as resp,
    ):
        model = json.loads(resp.read())["model"]
    assert model == {"md5": locked_md5(proj, "mnist-classifier@v1.0.0"), "version": "v1.0.0"}


def test_a_release_without_a_remote_or_with_a_bad_version_is_refused(
    tmp_path: Path, tiny_baseline: Path
) -> None:
    proj, env = baseline_copy(tiny_baseline, tmp_path / "copy")
    for args, words in (
        (["1.0.0"], "no default DVC remote"),
        (["one"], "is not MAJOR.MINOR.PATCH"),
        (["3.0.0", "--stage", "bad stage"], "stage 'bad stage' is not a stage name GTO takes"),
    ):
        refused = release(proj, env, *args, check=False)
        assert refused.startswith("1\n") and words in refused and "Traceback" not in refused, refused
    assert git(proj, "tag") == ""
