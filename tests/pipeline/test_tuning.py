"""`make tune` for real: Optuna studies whose trials are DVC experiments of this pipeline.

Tiny synthetic data and a tiny space (1-2 epochs). What each test reads back, it reads from
the real records, independently of the code under test: experiments from git's refs/exps and
`dvc exp show --json`, the study from Optuna's own storage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import psutil
import pytest
import yaml

from mnist_classifier.config import lookup
from tests.support.commands import dvc, git, output, run, tool_env
from tests.support.projects import baseline_copy, tiny_project
from tests.support.servers import S3_BUCKET, S3_KEY, S3_SECRET, postgres_server, s3_server

pytestmark = pytest.mark.slow

# Small learning rates and one or two epochs: validation and test accuracy differ, so a mix-up
# of the two shows.
SPACE = {
    "learning_rate": {"low": 1e-5, "high": 3e-4, "log": True},
    "epochs": {"low": 1, "high": 2},
    "mlp.hidden_units": {"layers": {"low": 1, "high": 2}, "units": {"choices": [8, 16]}},
    "optimizer": {"choices": ["adam", "rmsprop"]},
}


def set_space(proj: Path, study: str, trials: int, **settings: object) -> None:
    tune = yaml.safe_load((proj / "tune.yaml").read_text())
    tune.update(study=study, trials=trials, startup_trials=2, **settings)
    tune["space"]["mlp"] = SPACE
    (proj / "tune.yaml").write_text(yaml.safe_dump(tune, sort_keys=False))


def load(study: str, storage: str):  # -> optuna.Study
    import optuna

    if "://" not in storage:
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(storage))
    return optuna.load_study(study_name=study, storage=storage)


def states(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def exp_rows(proj: Path, env: dict[str, str]) -> dict[str, dict]:
    """`dvc exp show --json`: each named experiment's params and metrics, by name."""
    out = dvc(proj, "exp", "show", "--json", env=env).stdout
    rows = {}
    for commit in json.loads(out):
        for exp in commit.get("experiments") or []:
            rev = exp["revs"][0]
            data = rev["data"]
            rows[exp["name"]] = {
                "params": data["params"]["params.yaml"]["data"],
                "metrics": {path: m["data"] for path, m in data["metrics"].items()},
                "sha": rev["rev"],
            }
    return rows


def exp_refs(proj: Path) -> dict[str, str]:
    """Experiment name -> commit, from git itself."""
    out = git(proj, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/")
    return {ref.rsplit("/", 1)[1]: sha for ref, sha in (line.split() for line in out.splitlines())}


def tune(proj: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_classifier.tuning", *args],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode:
        raise AssertionError(f"tune failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tiny_baseline: Path) -> tuple[Path, dict[str, str]]:
    """A committed tiny project with its baseline run, a small space in tune.yaml."""
    proj, env = baseline_copy(tiny_baseline, tmp_path_factory.mktemp("tune") / "copy")
    env.pop("TRAIN_THREADS", None)
    set_space(proj, "tiny", 4)
    git(proj, "commit", "-q", "-am", "a small search space")
    return proj, env


def test_a_search_of_four_trials_on_four_workers_makes_four_experiments_scored_on_validation(
    base: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    proj, env = base
    # Four at once on two cores, started while another dvc command holds the repository's lock
    # for longer than DVC's own retries (3 s): each trial waits its turn instead of failing (with
    # JOBS=4, two of four once failed on the lock, and three failures in a row end a search).
    from dvc.lock import make_lock

    with make_lock(str(proj / ".dvc" / "tmp" / "lock"), tmp_dir=str(proj / ".dvc" / "tmp")):
        search = subprocess.Popen(
            [sys.executable, "-m", "mnist_classifier.tuning", "--jobs", "4"],
            cwd=proj,
            env=env,
            stdout=PIPE,
            stderr=PIPE,
            text=True,
        )
        time.sleep(15)
    out, err = search.communicate(timeout=900)
    assert search.returncode == 0, out + err
    study = load("tiny", str(proj / ".tune" / "journal.log"))
    trials = study.get_trials()
    assert states(study) == {"COMPLETE": 4}, out
    rows = exp_rows(proj, env)
    val_differs_from_test = False
    for trial in trials:
        name = trial.user_attrs["experiment"]
        assert name == f"tiny-{trial.number}" and name in rows, (name, sorted(rows))
        exp = rows[name]
        # The experiment's params are the study's draw, with the model's other keys as composed.
        assert exp["params"]["model"] == "mlp"
        for key, value in trial.user_attrs["params"].items():
            assert lookup(exp["params"], key) == value, (name, key)
        assert exp["params"]["learning_rate"] == trial.params["learning_rate"]
        assert len(exp["params"]["mlp"]["hidden_units"]) == trial.params["mlp.hidden_units.layers"]
        # The objective is the train stage's validation accuracy, not the test set's.
        val = exp["metrics"]["reports/train/metrics.json"]["eval"]["accuracy"]
        test = exp["metrics"]["reports/metrics.json"]["test"]["accuracy"]
        assert trial.value == pytest.approx(val, abs=1e-12), name
        val_differs_from_test |= abs(val - test) > 1e-6
    assert val_differs_from_test, "every trial scored the same on both sets: the check above proves nothing"
    log = (proj / ".tune" / "logs" / "tiny-0.log").read_text()
    assert "Running stage 'train'" in log

    # The report: the table, the best trial's test accuracy (its alone), the keep command, figures.
    best = max(trials, key=lambda t: (t.value, -t.number))
    best_name = best.user_attrs["experiment"]
    results = (proj / "reports" / "tune" / "tiny" / "results.md").read_text()
    assert f"make keep NAME={best_name}" in results and results in out
    best_test = rows[best_name]["metrics"]["reports/metrics.json"]["test"]["accuracy"]
    assert f"**{best_test:.4f}**" in results
    table = [line for line in results.splitlines() if line.startswith("| ") and "experiment" not in line]
    assert len(table) == 4 and sum("**" in line for line in table) == 1, results
    from PIL import Image

    for figure in ("history.png", "importance.png"):
        with Image.open(proj / "reports" / "tune" / "tiny" / figure) as image:
            assert image.format == "PNG" and image.width >= 400

    # `make tune` again, with nothing left to do: no trial runs, the report is printed again.
    again = tune(proj, env, "--jobs", "4").stdout
    assert "0 to go" in again and "started" not in again and f"make keep NAME={best_name}" in again

    # The printed command, in a copy (this module's later tests reuse the project): the best
    # trial becomes conf/'s default and the committed baseline, with no stage run.
    kept = tmp_path / "kept"
    shutil.copytree(proj, kept, symlinks=True)
    out = run(kept, sys.executable, "-m", "mnist_classifier.workspace", "keep", best_name, env=env).stdout
    assert f"{best_name} is the default now" in out, out
    from mnist_classifier.composition import compose

    assert compose(conf_dir=kept / "conf") == rows[best_name]["params"]
    assert "Data and pipelines are up to date" in output(dvc(kept, "status", env=env))


def test_the_same_study_proposes_the_same_trials_and_reruns_them_from_the_run_cache(
    base: tuple[Path, dict[str, str]],
) -> None:
    proj, env = base
    journal = proj / ".tune" / "journal.log"
    if not journal.exists() or len(load("tiny", str(journal)).get_trials()) < 4:  # run alone
        tune(proj, env, "--jobs", "4")
    first = load("tiny", str(journal))
    tune(proj, env, "--jobs", "4", "--study", "again")
    again = load("again", str(proj / ".tune" / "journal.log"))
    assert [t.params for t in again.get_trials()] == [t.params for t in first.get_trials()]
    assert [t.value for t in again.get_trials()] == [t.value for t in first.get_trials()]
    for trial in again.get_trials():  # the same params: DVC restored the stages, trained nothing
        log = (proj / ".tune" / "logs" / f"again-{trial.number}.log").read_text()
        assert "Stage 'train' is cached - skipping run" in log, log


def running_children(pgids: set[int]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) in pgids:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def wait_for_outcomes(
    study_name: str, journal: Path, count: int, proc: subprocess.Popen, starting: bool = False
) -> None:
    """Until `count` trials have a recorded outcome (they finished, told or not) and, when
    `starting`, another has just started (not yet training), so there is a trial to cut."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if journal.exists():
            trials = load(study_name, str(journal)).get_trials()
            with_outcome = [t for t in trials if "outcome" in t.user_attrs]
            starting_now = [
                t
                for t in trials
                if "pgid" in t.user_attrs
                and "outcome" not in t.user_attrs
                and not (journal.parent / "progress" / f"{t.user_attrs['experiment']}.jsonl").exists()
            ]
            if len(with_outcome) >= count and (starting_now or not starting):
                return
        time.sleep(0.2)
    raise AssertionError("no trial finished in time")


def terminal_sigint() -> None:
    """In the child: Ctrl-C as a terminal delivers it, even when pytest itself runs as
    `cmd &` from a script (which makes SIGINT ignored, and the child would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_and_kill_9_lose_no_finished_trial_and_the_same_command_resumes(
    tmp_path: Path, tiny_baseline: Path
) -> None:
    proj, env = baseline_copy(tiny_baseline, tmp_path / "copy")
    env.pop("TRAIN_THREADS", None)
    set_space(proj, "cut", 4)
    git(proj, "commit", "-q", "-am", "a small search space")
    journal = proj / ".tune" / "journal.log"
    cmd = [sys.executable, "-m", "mnist_classifier.tuning", "--jobs", "2"]

    # Ctrl-C once the first trial has finished: the running one is stopped and marked cut.
    proc = subprocess.Popen(
        cmd, cwd=proj, env=env, stdout=PIPE, stderr=PIPE, text=True, preexec_fn=terminal_sigint
    )
    wait_for_outcomes("cut", journal, 1, proc, starting=True)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "interrupted" in err.strip().splitlines()[-1], err
    study = load("cut", str(journal))
    assert "RUNNING" not in states(study), states(study)
    cut = [t for t in study.get_trials() if t.state.name == "FAIL"]
    outcomes = [t.user_attrs.get("outcome") for t in study.get_trials()]
    assert cut and all(t.user_attrs.get("cut") == "interrupted" for t in cut), (states(study), outcomes, err)
    kept = {t.user_attrs["experiment"]: t.number for t in study.get_trials() if t.state.name == "COMPLETE"}
    assert kept and set(kept) <= set(exp_refs(proj))

    # kill -9 once one more has finished: nothing can clean up, so the next run does.
    done = len(kept)
    proc = subprocess.Popen(
        cmd, cwd=proj, env=env, stdout=PIPE, stderr=PIPE, text=True, preexec_fn=terminal_sigint
    )
    wait_for_outcomes("cut", journal, done + 1, proc)
    before_kill = exp_refs(proj)
    orphans = {
        t.user_attrs["pgid"] for t in load("cut", str(journal)).get_trials() if t.state.name == "RUNNING"
    }
    proc.kill()
    proc.communicate()

    out = tune(proj, env, "--jobs", "2").stdout
    assert not running_children(orphans), "the killed search's trials were left running"
    study = load("cut", str(journal))
    assert states(study).get("COMPLETE") == 4 and "RUNNING" not in states(study), states(study)
    completed = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    names = [t.user_attrs["experiment"] for t in completed]
    assert len(set(names)) == 4 and set(names) <= set(exp_refs(proj))
    for name, sha in before_kill.items():  # finished before the kill: kept, not run again
        assert exp_refs(proj)[name] == sha
        assert name in names, (name, out)
    assert "left by a killed search" in out
    # ...and the orphans it stopped (SIGTERM: DVC cleans up) left no temporary workspace.
    assert not list((proj / ".dvc" / "tmp" / "exps").glob("standalone/tmp*"))
    # Every experiment of the study is a finished trial: nothing ran twice, nothing was lost.
    assert {n for n in exp_refs(proj) if n.startswith("cut-")} == set(names)


@pytest.fixture(scope="module")
def s3() -> str:
    with s3_server() as url:
        yield url


# On PostgreSQL. Two machines sharing a journal file are tests/unit/test_scheduler.py's (their
# searches with stub trials, in seconds): the same code, another of Optuna's storages. Two
# trials: each machine asks for one as it starts, long before the other's first one ends.
@pytest.mark.parametrize("storage, trials", [("postgresql", 2)])
def test_two_machines_share_one_study_and_a_third_applies_the_best_without_training(
    tmp_path: Path, s3: str, storage: str, trials: int
) -> None:
    # One bare git repo and one S3 bucket as the team's remotes; each "machine" is a clone.
    proj, mirror = tiny_project(tmp_path)
    set_space(proj, f"shared-{storage}", trials)
    dvc(proj, "remote", "add", "-d", "team", f"s3://{S3_BUCKET}/{storage}")
    dvc(proj, "remote", "modify", "team", "endpointurl", s3)
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "project with its remote")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(proj), str(bare))
    env = tool_env(DATA_MIRROR=str(mirror), AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET)
    clones = []
    for name in ("a", "b", "c"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(bare), str(clone))
        git(clone, "config", "user.name", name)
        git(clone, "config", "user.email", f"{name}@t")
        clones.append(clone)

    def shared(url: str) -> None:
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "mnist_classifier.tuning", "--storage", url, "--push", "origin"],
                cwd=clone,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for clone in clones[:2]
        ]
        outs = [w.communicate(timeout=900)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outs
        check(url, outs)

    def check(url: str, outs: list[str]) -> None:
        study = load(f"shared-{storage}", url)
        completed = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
        assert len(completed) >= trials and "RUNNING" not in states(study), states(study)
        # Both machines worked on it, no trial number ran twice, and no two trials got the
        # same params (two machines asking at the same moment once drew the same ones).
        assert all("started" in out for out in outs), outs
        assert not any("Warning" in out for out in outs), outs  # Optuna's heartbeat notice was one per trial
        drawn = [json.dumps(t.params, sort_keys=True) for t in completed]
        assert len(set(drawn)) == len(drawn), drawn
        names = [t.user_attrs["experiment"] for t in completed]
        pushed = git(clones[2], "ls-remote", "origin", "refs/exps/*").split()
        assert sorted(names) == sorted(ref.rsplit("/", 1)[1] for ref in pushed[1::2])

        # A third clone pulls the best trial and applies it: no stage runs.
        best = max(completed, key=lambda t: (t.value, -t.number)).user_attrs["experiment"]
        third = clones[2]
        dvc(third, "exp", "pull", "origin", best, env=env)
        dvc(third, "exp", "apply", best, env=env)
        assert yaml.safe_load((third / "params.yaml").read_text())["learning_rate"] == lookup(
            next(t for t in completed if t.user_attrs["experiment"] == best).user_attrs["params"],
            "learning_rate",
        )
        status = dvc(third, "status", env=env).stdout
        assert "up to date" in status, status
        repro = dvc(third, "repro", env=env)
        assert "Running stage" not in repro.stdout + repro.stderr, repro.stdout

    if storage == "postgresql":
        with postgres_server() as url:
            shared(url)
    else:
        shared(str(tmp_path / "journal.log"))  # a file both machines can reach (NFS, in a team)
