"""One trial: a `dvc exp run --temp` process, followed epoch by epoch, and what it came to.

A trial's result is an `Outcome`; `tell` is the one place an outcome becomes an Optuna state.
Each outcome is also recorded on the trial (a user attribute) the moment it is known, before
it is told, so a search killed in between loses nothing: `recover` settles such trials.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mnist_classifier import processes
from mnist_classifier.tuning.experiments import experiment_ref, validation_accuracy
from mnist_classifier.tuning.search_space import Settings, override
from mnist_classifier.tuning.study import STATE_DIR

if TYPE_CHECKING:
    import optuna

State = Literal["COMPLETE", "PRUNED", "FAIL"]  # Optuna's TrialState names, as told


@dataclass(frozen=True)
class Outcome:
    """What a trial came to: its state, its value (None when failed), its time, a line for people."""

    state: State
    value: float | None = None
    seconds: float | None = None
    line: str = ""

    def record(self) -> dict[str, Any]:
        """The part kept on the trial until it is told (Optuna user attributes are JSON)."""
        return {"state": self.state, "value": self.value}

    @classmethod
    def recorded(cls, attrs: dict[str, Any]) -> Outcome:
        return cls(attrs["state"], attrs.get("value"))


def tell(study: optuna.Study, trial: optuna.Trial | int, outcome: Outcome) -> None:
    """Tell the study a trial's outcome (once: a trial already told is left as it is)."""
    import optuna

    state = optuna.trial.TrialState[outcome.state]
    value = None if state == optuna.trial.TrialState.FAIL else outcome.value
    study.tell(trial, value, state=state, skip_if_finished=True)


@dataclass
class Running:
    """A trial whose `dvc exp run --temp` is under way."""

    trial: optuna.Trial
    name: str
    ref: str
    proc: subprocess.Popen
    log: Path
    progress: Path
    started: float = field(default_factory=time.monotonic)
    epochs_seen: int = 0
    last_value: float | None = None  # the latest epoch's validation accuracy
    pruned: bool = False


def dvc_command(name: str, overrides: list[str]) -> list[str]:
    """The trial itself: the whole pipeline in its own temporary copy of the workspace."""
    # --wait-for-lock: trials started together take turns at the repository's lock (without
    # it, with JOBS=4 on 2 cores, two of four failed on it, and three in a row end the search).
    cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "exp", "run", "--temp", "-n", name]
    for item in overrides:
        cmd += ["-S", item]
    return cmd


def draw(study: optuna.Study, settings: Settings) -> tuple[optuna.Trial, dict[str, Any]]:
    """Ask the study for a trial and draw its params."""
    from mnist_classifier.tuning.sampler import ShortFloatTPE

    trial = study.ask()
    # Seeded by the trial's own number, so the same history gives the same proposal, on a resume
    # too. Its number, not a count of trials taken before ask(): two machines that count at the
    # same moment would draw the same params. TPE draws in suggest(), after this.
    study.sampler = ShortFloatTPE(seed=settings.seed + trial.number, n_startup_trials=settings.startup_trials)
    return trial, {param.key: param.suggest(trial) for param in settings.params}


def start(
    study: optuna.Study,
    settings: Settings,
    baseline: str,
    threads: int,
    command: Callable[[str, list[str]], list[str]] = dvc_command,
) -> Running:
    """Ask the study for a trial and start it (by default as a DVC experiment in a temporary workspace)."""
    trial, values = draw(study, settings)
    name = f"{settings.study}-{trial.number}"
    for dirname in ("logs", "progress"):
        (STATE_DIR / dirname).mkdir(parents=True, exist_ok=True)
    log, progress = STATE_DIR / "logs" / f"{name}.log", STATE_DIR / "progress" / f"{name}.jsonl"
    progress.unlink(missing_ok=True)
    overrides = [override("model", settings.model)] + [override(k, v) for k, v in values.items()]
    cmd = command(name, overrides)
    env = {**os.environ, "TRAIN_THREADS": str(threads), "TRAIN_PROGRESS": str(progress.resolve())}
    with log.open("w", encoding="utf-8") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        # Its own session: Ctrl-C reaches this process only, which stops each trial in order.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    for key, value in {
        "experiment": name,
        "params": values,
        "baseline": baseline,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pgid": proc.pid,
    }.items():
        trial.set_user_attr(key, value)
    print(f"tune: trial {trial.number} started ({name}): {' '.join(overrides[1:])}", flush=True)
    return Running(trial, name, experiment_ref(baseline, name), proc, log, progress)


def follow_epochs(run: Running) -> None:
    """Report each new epoch's validation accuracy; stop the trial if the pruner says so."""
    if run.pruned or not run.progress.exists():
        return
    lines = run.progress.read_text(encoding="utf-8").splitlines()
    for line in lines[run.epochs_seen :]:
        try:
            epoch = json.loads(line)
        except json.JSONDecodeError:  # a line being written: read it next time
            break
        run.epochs_seen, run.last_value = run.epochs_seen + 1, epoch["val_accuracy"]
        run.trial.report(run.last_value, epoch["epoch"])
        if run.trial.should_prune():
            run.pruned = True
            stop_group(run.proc.pid, signal.SIGINT, leader=run.proc)
            return


def judge(
    run: Running,
    returncode: int,
    score: Callable[[str], float | None] = validation_accuracy,
    cut: str | None = None,
) -> Outcome:
    """What a trial that has ended came to; `score` reads its objective from its experiment.

    `cut`: why the search stopped it. It may have finished as it was stopped (it ended between
    two polls, or DVC had saved its experiment and was cleaning up): its experiment is then
    kept, so it counts as finished, as `recover` counts one (CI once cut such a trial: its
    experiment stayed beside a failed trial, and the resumed search ran another in its place).
    """
    seconds = round(time.monotonic() - run.started, 1)
    if run.pruned:
        return Outcome("PRUNED", run.last_value, seconds, f"pruned after {run.epochs_seen} epochs")
    if (returncode == 0 or cut) and (value := score(run.ref)) is not None:
        line = f"validation accuracy {value:.4f}" + (", finished as it was stopped" if cut else "")
        return Outcome("COMPLETE", value, seconds, line)
    if cut:
        return Outcome("FAIL", None, seconds, f"cut: {cut}")
    lines = [x for x in run.log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    why = lines[-1].strip() if returncode else "it ran, but left no validation accuracy"
    return Outcome("FAIL", None, seconds, f"failed: {why} (log: {run.log})")


def share(remote: str | None, name: str, outcome: Outcome) -> str | None:
    """Push a finished trial (`--push REMOTE`): its experiment, its outputs and the run cache,
    to the git and DVC remotes. A warning line when the push failed: the trial itself is done,
    and `dvc exp push` can send it later."""
    if remote is None or outcome.state != "COMPLETE":
        return None
    proc = processes.run("dvc", "--wait-for-lock", "exp", "push", "--run-cache", remote, name)
    return (
        None
        if proc.returncode == 0
        else f"warning: `dvc exp push {remote} {name}` failed: {processes.error_line(proc)}"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(
    pgid: int, sig: int = signal.SIGTERM, wait_s: float = 20, leader: subprocess.Popen | None = None
) -> None:
    """Stop a trial's process group (dvc and the stage it runs), then make sure it is gone.

    `leader`: the group's first process when it is our child. It must be reaped as it ends: an
    unreaped child stays in its group, so the group would look alive until the deadline (Ctrl-C
    of `make tune` took 31 s per running trial that way).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if leader is not None:
                leader.poll()
            os.killpg(pgid, 0)
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGKILL)


def recover(study: optuna.Study, push_to: str | None = None) -> list[str]:
    """Settle this machine's trials left running by a search that was killed: each becomes
    finished (its result was recorded, or its experiment exists) or failed. Trials of a live
    search, here or on another machine, are left alone. With `push_to`, each one found
    finished is pushed as the search pushes a finished trial: the killed search may not have
    (the study, shared, would name an experiment no other machine could pull)."""
    import optuna

    host, notes = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or "pid" not in attrs or alive(attrs["pid"]):
            continue
        if "outcome" in attrs:
            outcome = Outcome.recorded(attrs["outcome"])
        else:
            if "pgid" in attrs:
                stop_group(attrs["pgid"])
            value = validation_accuracy(experiment_ref(attrs["baseline"], attrs["experiment"]))
            outcome = Outcome("COMPLETE", value) if value is not None else Outcome("FAIL")
        remove_workspace(attrs["experiment"])
        tell(study, trial.number, outcome)
        notes.append(
            f"trial {trial.number} ({attrs['experiment']}), left by a killed search: {outcome.state.lower()}"
        )
        if warning := share(push_to, attrs["experiment"], outcome):
            notes.append(warning)
    return notes


def remove_workspace(name: str) -> None:
    """Remove the temporary workspace a killed `dvc exp run --temp -n <name>` left behind (a
    copy of the project, tens of MB; DVC removes it itself unless the run is killed outright).
    DVC 3.67 records each run in <pid dir>/<id>/<id>.run (its ExecutorInfo, JSON: the
    experiment's name, and the `root_dir` it works in, .dvc/tmp/exps/standalone/tmp...); the
    pid dir is .dvc/tmp/exps/standalone/run for `--temp` runs, .dvc/tmp/exps/run for queued
    ones. Only those are read: the workspaces beside them are copies of the project that
    DVC may be deleting meanwhile (walking into one as it went once ended a resumed search
    with FileNotFoundError), and glob skips a folder that vanishes. Only a directory recorded
    for this experiment, inside .dvc/tmp/exps, is removed, and only after the trial's
    processes are gone."""
    import glob
    import shutil

    exps = Path(".dvc", "tmp", "exps").resolve()
    records: list[str] = []
    for pid_dir in ("standalone/run", "run"):  # `--temp` runs', queued runs'
        records += glob.glob(f"{glob.escape(str(exps))}/{pid_dir}/*/*.run")
    for info in map(Path, records):
        try:
            record = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("name") != name:
            continue
        workspace = Path(str(record.get("root_dir", ""))).resolve()
        if workspace.is_relative_to(exps) and workspace.name.startswith("tmp") and workspace.is_dir():
            shutil.rmtree(workspace, ignore_errors=True)
