"""Experiments at scale, with the real `dvc` and `git`: queued sweeps on parallel workers,
`make compare`, and a team sharing results through a git remote and a DVC remote.

Tiny synthetic data, as in test_pipeline.py. Experiment results are read back from git
(`refs/exps/...`), where DVC stores them, independently of the code under test.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.commands import dvc, git, output, ran, run
from tests.support.params import set_params
from tests.support.paths import METRICS, MODEL
from tests.support.projects import baseline_copy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tiny_baseline: Path) -> tuple[Path, dict[str, str]]:
    """A committed project with a tiny dataset and its baseline run (dvc.lock in git)."""
    return baseline_copy(tiny_baseline, tmp_path_factory.mktemp("exps") / "copy", TRAIN_THREADS="1")


def dvc_out(proj: Path, env: dict[str, str], *args: str) -> str:
    """What `dvc <args>` printed, stdout and stderr together."""
    return output(dvc(proj, *args, env=env))


def experiments(proj: Path) -> dict[str, tuple[dict, dict]]:
    """Every experiment DVC recorded: name -> (params.yaml, metrics.json), read from git."""
    refs = git(proj, "for-each-ref", "--format=%(refname)", "refs/exps").split()
    found = {}
    for ref in refs:
        if ref.count("/") >= 4:  # refs/exps/<2>/<38>/<name>; not refs/exps/exec/...
            found[ref.rsplit("/", 1)[1]] = (
                yaml.safe_load(git(proj, "show", f"{ref}:params.yaml")),
                json.loads(git(proj, "show", f"{ref}:{METRICS}")),
            )
    return found


def wait_for_queue(proj: Path, env: dict[str, str], timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dvc_out(proj, env, "queue", "status")
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(3)
    raise AssertionError(f"the queue did not finish:\n{status}")


def test_a_parallel_queue_grid_over_models_equals_runs_alone_and_compares_by_seed(
    base: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    proj, env = base
    # A grid over models (seed 1 each; the baseline is the MLP at seed 42, a second seed).
    dvc_out(proj, env, "exp", "run", "--queue", "-S", "model=mlp,cnn", "-S", "seed=1")
    # One that fails (its train stage refuses 0 epochs): its copy carries the committed
    # metrics, which must not count as a run.
    dvc_out(proj, env, "exp", "run", "--queue", "-n", "doomed", "-S", "epochs=0", "-S", "seed=7")
    dvc_out(proj, env, "queue", "start", "-j", "2")
    status = wait_for_queue(proj, env)
    assert status.count("Success") == 2 and status.count("Failed") == 1, status
    found = {name: exp for name, exp in experiments(proj).items() if name != "doomed"}
    assert sorted((p["model"], p["seed"]) for p, _ in found.values()) == [("cnn", 1), ("mlp", 1)]
    for p, _ in found.values():  # each run holds its own model's params, and only those
        assert (p["model"] in p) and ({"mlp", "cnn"} - {p["model"]}).isdisjoint(p), p

    # The same params alone, in another clone, give the same metrics to the last digit: on
    # each model's backend (the MLP's JAX, the CNN's TensorFlow).
    alone = tmp_path / "alone"
    git(tmp_path, "clone", "-q", str(proj), str(alone))
    for model in ("mlp", "cnn"):
        dvc_out(alone, env, "exp", "run", "-S", f"model={model}", "-S", "seed=1")
        queued = next(m for p, m in found.values() if (p["model"], p["seed"]) == (model, 1))
        assert json.loads((alone / METRICS).read_text()) == queued, model

    # make compare: one row per model, mean ± sd worked out here. The baseline commit's own
    # run (the MLP, seed 42) is one more run of its group. Keys that only follow the model
    # (each model's epochs, its block) are not columns of their own.
    found["baseline"] = (
        yaml.safe_load(git(proj, "show", "HEAD:params.yaml")),
        json.loads(git(proj, "show", f"HEAD:{METRICS}")),
    )
    out = run(proj, sys.executable, "-m", "mnist_classifier.compare", env=env).stdout
    lines = out.splitlines()
    assert lines[0] == "| model | runs | seeds | test accuracy | test loss |", out
    assert ", 7" not in out and "| 0 |" not in out  # the failed run is nowhere
    rows = {}
    for line in lines[2:4]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]

    def mean_sd(xs: list[float]) -> str:
        mean = sum(xs) / len(xs)
        if len(xs) == 1:  # one run has no spread to show
            return f"{mean:.4f} (one run: no spread)"
        sd = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5
        return f"{mean:.4f} ± {sd:.4f}"

    for model in ("mlp", "cnn"):
        group = [m["test"] for p, m in found.values() if p["model"] == model]
        seeds = sorted(p["seed"] for p, _ in found.values() if p["model"] == model)
        assert rows[model] == [
            str(len(group)),
            ", ".join(map(str, seeds)),
            mean_sd([g["accuracy"] for g in group]),
            mean_sd([g["loss"] for g in group]),
        ]
    assert rows["mlp"][:2] == ["2", "1, 42"] and rows["cnn"][:2] == ["1", "1"]
    assert "±" in rows["mlp"][2] and "±" not in rows["cnn"][2]
    best = max(
        ("mlp", "cnn"),
        key=lambda k: statistics.mean(m["test"]["accuracy"] for p, m in found.values() if p["model"] == k),
    )
    assert lines[2].strip("|").split("|")[0].strip() == best
    assert (proj / "reports" / "compare.png").stat().st_size > 0  # the spread figure beside it

    # The pull-request report's table is the same: the failed run is not in it either.
    report = run(proj, sys.executable, "-m", "mnist_classifier.report", "--base", "HEAD", env=env).stdout
    table = report.split("## This run and the experiments (mean ± sd over seeds)\n", 1)[1]
    assert table.strip().splitlines()[:4] == lines[:4], (lines, report)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_a_team_shares_models_experiments_and_the_run_cache(
    base: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Alice trains and pushes; Bob gets everything without training; a third project imports."""
    proj, env = base
    origin, store = tmp_path / "origin.git", tmp_path / "dvc-store"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    alice = tmp_path / "alice"
    git(tmp_path, "clone", "-q", str(proj), str(alice))
    dvc_out(
        alice, env, "cache", "dir", "--local", str(proj / ".dvc" / "cache")
    )  # her baseline, not retrained
    dvc_out(alice, env, "checkout")
    dvc_out(alice, env, "remote", "add", "-d", "store", str(store))
    git(alice, "commit", "-qam", "a shared DVC remote")
    git(alice, "remote", "set-url", "origin", str(origin))
    git(alice, "push", "-q", "origin", "main")
    dvc_out(alice, env, "exp", "run", "-n", "more-epochs", "-S", "epochs=3")
    alice_exp = json.loads((alice / METRICS).read_text())
    dvc_out(alice, env, "push", "--run-cache")
    dvc_out(alice, env, "exp", "push", "origin", "more-epochs")
    git(alice, "checkout", "-q", "--", ".")
    dvc_out(alice, env, "checkout")
    dvc_out(alice, env, "push")  # the baseline's own outputs

    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    bob_env = {k: v for k, v in env.items() if k != "DATA_MIRROR"}  # Bob cannot fetch: all from the remote
    dvc_out(bob, bob_env, "pull")
    assert "up to date" in dvc_out(bob, bob_env, "status")
    assert md5(bob / MODEL) == md5(alice / MODEL)

    dvc_out(bob, bob_env, "pull", "--run-cache")  # the run records; --pull fetches what a hit restores
    out = dvc_out(bob, bob_env, "exp", "run", "--pull", "-S", "epochs=3")
    assert "Stage 'train' is cached - skipping run" in out and "train" not in ran(out), out
    assert json.loads((bob / METRICS).read_text()) == alice_exp
    git(bob, "checkout", "-q", "--", ".")
    dvc_out(bob, bob_env, "checkout")

    dvc_out(bob, bob_env, "exp", "pull", "origin", "more-epochs")
    dvc_out(bob, bob_env, "exp", "apply", "more-epochs")
    assert json.loads((bob / METRICS).read_text()) == alice_exp
    assert "up to date" in dvc_out(bob, bob_env, "status")

    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    dvc_out(other, bob_env, "init", "-q")
    dvc_out(other, bob_env, "import", str(origin), str(MODEL), "-o", "classifier.keras")
    assert md5(other / "classifier.keras") == md5(alice / MODEL)


def test_the_pull_request_report_holds_the_metrics_diff_of_two_commits(
    base: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    proj, env = base
    pr = tmp_path / "pr"
    git(tmp_path, "clone", "-q", str(proj), str(pr))
    dvc_out(pr, env, "cache", "dir", "--local", str(proj / ".dvc" / "cache"))
    dvc_out(pr, env, "checkout")
    before = json.loads((pr / METRICS).read_text())["test"]
    set_params(pr / "params.yaml", epochs=3)
    dvc_out(pr, env, "repro")  # the run CI makes: in the workspace, not committed
    after = json.loads((pr / METRICS).read_text())["test"]

    # Run as CI's step runs it, but without the venv on the PATH: the report finds DVC itself.
    bare = {**env, "PATH": "/usr/bin:/bin"}
    out = run(
        pr,
        sys.executable,
        "-m",
        "mnist_classifier.report",
        "--base",
        "HEAD",
        "--figures-url",
        "https://example.invalid/run/1",
        env=bare,
    ).stdout
    row = next(line for line in out.splitlines() if "| test.loss " in line)  # DVC lists changed metrics
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["reports/metrics.json", "test.loss"], row  # then base, workspace, change
    assert [float(c) for c in cells[2:5]] == pytest.approx(
        [before["loss"], after["loss"], after["loss"] - before["loss"]], abs=1e-4
    )  # DVC rounds to 5 digits
    assert re.search(r"\| epochs\s+\| 2\s+\| 3\s+\|", out), out  # the params diff
    assert "https://example.invalid/run/1" in out
    # The table shows this run (the workspace), not the committed metrics, and says how to
    # bring in the experiments a fresh checkout lacks.
    experiments = out.split("## This run and the experiments", 1)[1]
    assert f"| 1 | 42 | {after['accuracy']:.4f} (one run: no spread) |" in experiments, experiments
    assert f"{before['accuracy']:.4f} (one run" not in experiments or before["accuracy"] == after["accuracy"]
    assert "git fetch origin 'refs/exps/*:refs/exps/*'" in experiments and "dvc exp pull" in experiments
    # A base that is no commit, or an option in disguise, is one line (DVC's help once came out, rc 0).
    for bad in ("--base=-h", "--base=origin/mian"):
        proc = run(pr, sys.executable, "-m", "mnist_classifier.report", bad, env=bare, check=False)
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout
        assert proc.stderr.strip().startswith("report: error: --base") and "\n" not in proc.stderr.strip()
