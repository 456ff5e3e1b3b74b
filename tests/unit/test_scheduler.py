"""The search's scheduler, fast: a real Optuna study in memory and real processes, with each
trial a few lines of Python instead of a `dvc exp run` (`Search.command`), and its score read
from what that process wrote (`Search.score`). The pipeline's own trials are
tests/pipeline/test_tuning.py's, in minutes; these take seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_classifier.errors import PipelineError
from mnist_classifier.tuning.search import Search
from mnist_classifier.tuning.search_space import Dimension, Param, Settings
from mnist_classifier.tuning.trials import recover
from tests.support.commands import git
from tests.support.paths import ROOT

# A trial: logs its start and end, sleeps, writes its score, exits with the code it is given.
TRIAL = """
import json, sys, time
name, seconds, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
def log(event):
    with open("events.jsonl", "a") as f:
        f.write(json.dumps({"name": name, "event": event, "t": time.monotonic()}) + "\\n")
log("start")
time.sleep(seconds)
if code:
    print(f"boom in {name}")
else:
    open(name + ".score", "w").write(str(int(name.rsplit("-", 1)[1]) / 10))
log("end")
sys.exit(code)
"""


def settings(trials: int) -> Settings:
    rate = Dimension("learning_rate", "float", 1e-4, 1e-2, log=True)
    return Settings("s", "mlp", 0, trials, 2, False, (Param("learning_rate", rate),))


def score(ref: str) -> float | None:
    path = Path(ref.rsplit("/", 1)[1] + ".score")
    return float(path.read_text()) if path.exists() else None


def events() -> list[dict]:
    return [json.loads(line) for line in Path("events.jsonl").read_text().splitlines()]


def number(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def search(trials: int, jobs: int, seconds: dict[int, float], codes: dict[int, int] | None = None):
    """A Search whose trial N sleeps seconds[N] (default 0.1) and exits codes[N] (default 0);
    what the study had been told when each trial started is kept in `known`."""
    import optuna

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize")
    known: dict[int, list[int]] = {}

    def command(name: str, overrides: list[str]) -> list[str]:
        n = number(name)
        known[n] = sorted(t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished())
        return [sys.executable, "-c", TRIAL, name, str(seconds.get(n, 0.1)), str((codes or {}).get(n, 0))]

    return Search(
        settings(trials), study, storage, trials, jobs, "ab" * 20, command=command, score=score
    ), known


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mnist_classifier.tuning.search.POLL_S", 0.05)


def test_at_most_jobs_run_at_once_and_trial_n_waits_for_trial_n_minus_jobs() -> None:
    run, known = search(trials=5, jobs=2, seconds={0: 1.5})
    run.run()
    assert [t.state.name for t in run.study.get_trials()] == ["COMPLETE"] * 5
    assert [t.value for t in run.study.get_trials()] == [0.0, 0.1, 0.2, 0.3, 0.4]
    times = {(e["name"], e["event"]): e["t"] for e in events()}
    names = sorted({e["name"] for e in events()}, key=number)
    for name in names:  # never more than two at once
        at = times[(name, "start")]
        assert sum(times[(o, "start")] <= at < times[(o, "end")] for o in names) <= 2
    # Trial 1 ended long before trial 0, yet trial 2 (drawn from trials up to 0) waited for 0.
    assert times[("s-1", "end")] < times[("s-0", "end")] < times[("s-2", "start")]
    # Each trial was drawn knowing exactly the trials numbered up to its own minus jobs: the
    # same history, however the timings fall.
    assert known == {0: [], 1: [], 2: [0], 3: [0, 1], 4: [0, 1, 2]}


def test_a_failed_trial_is_replaced_until_the_study_has_its_finished_trials() -> None:
    run, _ = search(trials=3, jobs=1, seconds={}, codes={1: 1})
    run.run()
    states = [t.state.name for t in run.study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert run.study.get_trials()[1].user_attrs["outcome"] == {"state": "FAIL", "value": None}


def test_three_failures_in_a_row_stop_the_search_with_the_last_reason(capsys: pytest.CaptureFixture) -> None:
    run, _ = search(trials=5, jobs=1, seconds={}, codes={0: 0, 1: 3, 2: 3, 3: 3})
    with pytest.raises(PipelineError, match=r"3 trials in a row failed, the last failed: boom in s-3"):
        run.run()
    assert [t.state.name for t in run.study.get_trials()] == ["COMPLETE", "FAIL", "FAIL", "FAIL"]


def test_stopping_cuts_the_running_trials_and_tells_them_failed() -> None:
    run, _ = search(trials=4, jobs=2, seconds={0: 60, 1: 60})
    run.start()
    run.start()
    procs = [r.proc for r in run.running.values()]
    started = time.monotonic()
    run.stop("interrupted")
    assert all(p.poll() is not None for p in procs)
    # Not after waiting out the 30 s grace: a stopped trial that is not reaped still looks
    # alive to its process group (Ctrl-C of `make tune` once took 31 s a trial that way).
    assert time.monotonic() - started < 10
    trials = run.study.get_trials()
    assert [(t.state.name, t.user_attrs["cut"]) for t in trials] == [("FAIL", "interrupted")] * 2
    assert not run.running and not run.held


def test_a_trial_that_finished_before_the_stop_is_kept_not_cut(capsys: pytest.CaptureFixture) -> None:
    """Ctrl-C between a trial's end and the scheduler's next look at it: its experiment was
    saved, so it counts as finished (CI once cut such a trial; its experiment was kept beside a
    failed trial, and the resumed search ran another in its place)."""
    run, _ = search(trials=4, jobs=2, seconds={0: 0.1, 1: 60})
    run.start()
    run.start()
    run.running[0].proc.wait()  # finished, not yet polled
    run.stop("interrupted")
    trials = run.study.get_trials()
    assert [(t.state.name, t.value, t.user_attrs.get("cut")) for t in trials] == [
        ("COMPLETE", 0.0, None),
        ("FAIL", None, "interrupted"),
    ]
    assert trials[0].user_attrs["outcome"] == {"state": "COMPLETE", "value": 0.0}
    out = capsys.readouterr().out
    assert "tune: trial 0 (s-0) validation accuracy 0.0000, finished as it was stopped" in out
    assert run.done() == 1


def test_a_killed_searchs_trials_are_settled_from_what_was_recorded() -> None:
    import optuna

    shutil.copy(ROOT / "dvc.yaml", "dvc.yaml")  # where an experiment's metrics are (none, here)
    study = optuna.create_study(direction="maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    common = {"host": socket.gethostname(), "pid": dead.pid, "baseline": "ab" * 20}
    recorded, lost, live, elsewhere = (study.ask() for _ in range(4))
    for trial, attrs in (
        (recorded, {"experiment": "s-0", "outcome": {"state": "COMPLETE", "value": 0.5}}),
        (lost, {"experiment": "s-1"}),  # no result, no experiment (not a git repo here): failed
        (live, {"experiment": "s-2", "pid": os.getpid()}),  # a search still running: left alone
        (elsewhere, {"experiment": "s-3", "host": "another-machine"}),
    ):
        for key, value in {**common, **attrs}.items():
            trial.set_user_attr(key, value)
    # What DVC records of each `dvc exp run --temp` (seen in DVC 3.67): s-1's run was killed
    # outright, so its temporary workspace is still there; another experiment's is not ours,
    # and a record pointing outside .dvc/tmp/exps is never followed.
    exps = Path(".dvc", "tmp", "exps")
    for run_id, name, root in [
        ("a1", "s-1", exps / "standalone" / "tmpkilled"),
        ("b2", "other-0", exps / "standalone" / "tmpother"),
        ("c3", "s-1", Path("elsewhere", "tmpkeep")),
    ]:
        (root / "data").mkdir(parents=True)
        info = exps / "run" / run_id / f"{run_id}.run"
        info.parent.mkdir(parents=True)
        info.write_text(json.dumps({"name": name, "root_dir": str(root.resolve()), "status": 1}))
    notes = recover(study)
    assert not (exps / "standalone" / "tmpkilled").exists()
    assert (exps / "standalone" / "tmpother" / "data").is_dir() and Path("elsewhere", "tmpkeep").is_dir()
    assert [(t.state.name, t.value) for t in study.get_trials()] == [
        ("COMPLETE", 0.5),
        ("FAIL", None),
        ("RUNNING", None),
        ("RUNNING", None),
    ]
    assert notes == [
        "trial 0 (s-0), left by a killed search: complete",
        "trial 1 (s-1), left by a killed search: fail",
    ]


# One machine's search, as `make tune --storage <journal>` runs it, with the stub trials above.
MACHINE = """
import sys
from pathlib import Path
from mnist_classifier.tuning.search import Search
from mnist_classifier.tuning.search_space import Dimension, Param, Settings
from mnist_classifier.tuning.study import open_storage, open_study
journal, trial = sys.argv[1], sys.argv[2]
rate = Dimension("learning_rate", "float", 1e-4, 1e-2, log=True)
settings = Settings("shared", "mlp", 0, 6, 2, False, (Param("learning_rate", rate),))
storage = open_storage(journal)
study = open_study(settings, storage)
def command(name, overrides):
    return [sys.executable, "-c", trial, name, "0.3", "0"]
def score(ref):
    path = Path(ref.rsplit("/", 1)[1] + ".score")
    return float(path.read_text()) if path.exists() else None
Search(settings, study, storage, 6, 1, "ab" * 20, command=command, score=score).run()
"""


def test_two_machines_share_one_journal_and_draw_different_trials(tmp_path: Path) -> None:
    """Two searches at once on one journal file (a shared disk, in a team): six trials between
    them, each machine some, no trial left running, no two with the same params. (Two clones
    of a real project sharing a study on PostgreSQL, S3 and git remotes are test_tuning's.)"""
    import optuna

    from tests.support.commands import tool_env

    journal = tmp_path / "journal.log"
    machines = [tmp_path / name for name in ("a", "b")]
    procs = []
    for machine in machines:
        machine.mkdir()
        cmd = [sys.executable, "-c", MACHINE, str(journal), TRIAL]
        procs.append(subprocess.Popen(cmd, cwd=machine, env=tool_env(PYTHONPATH=str(ROOT)), text=True))
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * len(trials) and len(trials) >= 6
    assert len({t.params["learning_rate"] for t in trials}) == len(trials)
    ran = [sorted(p.stem for p in machine.glob("*.score")) for machine in machines]
    assert all(ran) and sorted(ran[0] + ran[1]) == sorted(t.user_attrs["experiment"] for t in trials)


def test_a_killed_trials_workspace_is_found_by_dvcs_own_record_and_nothing_else_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """remove_workspace reads DVC's records (--temp runs' and the queue's pid dirs) and removes
    the workspace one names for the experiment, inside .dvc/tmp/exps. A record inside a
    workspace (a copy of a project) is not this project's: what it names stays, and the
    copies, which DVC may be deleting meanwhile, are never walked."""
    from mnist_classifier.tuning.trials import remove_workspace

    monkeypatch.chdir(tmp_path)
    exps = (tmp_path / ".dvc" / "tmp" / "exps").resolve()

    def record(pid_dir: Path, name: str, root_dir: Path) -> None:
        (pid_dir / name).mkdir(parents=True)
        (pid_dir / name / f"{name}.run").write_text(json.dumps({"name": name, "root_dir": str(root_dir)}))

    def workspace(path: Path) -> Path:
        (path / "data").mkdir(parents=True)
        (path / "data" / "x").write_text("a copy")
        return path

    temp, queued, named_inside, outside = (
        workspace(exps / "standalone" / "tmpa"),
        workspace(exps / "standalone" / "tmpb"),
        workspace(exps / "standalone" / "tmpd"),
        workspace(tmp_path / "outside"),
    )
    record(exps / "standalone" / "run", "cut-1", temp)  # a `--temp` run's record
    record(exps / "run", "cut-2", queued)  # a queued run's
    record(exps / "standalone" / "run", "cut-3", outside)  # names a folder outside: kept
    copy = workspace(exps / "standalone" / "tmpc")
    record(copy / ".dvc" / "tmp" / "exps" / "standalone" / "run", "cut-1", named_inside)

    remove_workspace("cut-1")
    assert not temp.exists() and queued.is_dir() and named_inside.is_dir() and copy.is_dir()
    remove_workspace("cut-2")
    assert not queued.exists()
    remove_workspace("cut-3")
    remove_workspace("never-ran")
    assert outside.is_dir() and named_inside.is_dir() and copy.is_dir()


def test_a_finished_trial_is_pushed_when_ctrl_c_or_a_kill_came_before_its_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `--push`, every finished trial reaches the remotes, also one that finished as
    Ctrl-C came (the stop keeps it) and one whose search was killed between recording it and
    pushing it (the next search's recover settles it): otherwise the study, shared, would name
    an experiment no other machine could pull. Real `dvc exp run --temp` on a one-stage
    pipeline, a bare git remote and a local DVC remote."""
    import optuna

    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "t")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "t@t")
    proj, bare = tmp_path / "proj", tmp_path / "origin.git"
    proj.mkdir()
    monkeypatch.chdir(proj)
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(proj, "init", "-q")
    git(proj, "remote", "add", "origin", str(bare))
    stage = {"stages": {"s": {"cmd": "python -c \"open('out.txt', 'w').write('1')\"", "outs": ["out.txt"]}}}
    Path("dvc.yaml").write_text(json.dumps(stage))
    dvc = [sys.executable, "-m", "dvc"]
    for args in (
        ["init", "-q"],
        ["remote", "add", "-d", "store", str(tmp_path / "store")],
    ):
        subprocess.run(dvc + args, check=True, capture_output=True)
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "a one-stage pipeline")
    git(proj, "push", "-q", "origin", "HEAD")
    baseline = git(proj, "rev-parse", "HEAD").strip()

    def pushed() -> set[str]:
        return {
            line.rsplit("/", 1)[1] for line in git(proj, "ls-remote", "origin", "refs/exps/*").splitlines()
        }

    def command(name: str, overrides: list[str]) -> list[str]:
        return [*dvc, "exp", "run", "--temp", "-n", name]

    def exists(ref: str) -> float | None:
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], capture_output=True)
        return 1.0 if found.returncode == 0 else None

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize")
    run = Search(settings(2), study, storage, 2, 1, baseline, "origin", command=command, score=exists)
    run.start()
    assert run.running[0].proc.wait(timeout=120) == 0  # finished, not yet polled: then Ctrl-C
    run.stop("interrupted")
    assert study.get_trials()[0].state.name == "COMPLETE" and pushed() == {"s-0"}

    # A search killed after recording trial 1's result, before pushing it.
    subprocess.run([*command("s-1", []), "-q"], check=True, capture_output=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask()
    attrs = {"host": socket.gethostname(), "pid": dead.pid, "baseline": baseline, "experiment": "s-1"}
    for key, value in {**attrs, "outcome": {"state": "COMPLETE", "value": 1.0}}.items():
        trial.set_user_attr(key, value)
    assert recover(study, "origin") == ["trial 1 (s-1), left by a killed search: complete"]
    assert pushed() == {"s-0", "s-1"}
