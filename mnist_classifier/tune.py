"""`make tune`: an Optuna search in which every trial is a DVC experiment of this pipeline.

Why not dvclive's Optuna callback: it logs trials that train inside one Python process, so
they are neither cached nor reproducible by `dvc exp run`. Here each trial is
`dvc exp run --temp -n <study>-<number> -S key=value ...`: the whole pipeline in its own
temporary copy of the workspace, so several run side by side (each on its share of the cores,
TRAIN_THREADS), every one lands in `dvc exp show`, reruns from the run cache, compares with
`make compare` and is pushed and pulled like any other experiment.

Optuna holds the study: which params each trial got and what it scored. By default it is a
journal file in .tune/ (gitignored); with `--storage postgresql://...` (or a journal file on a
shared file system) any number of machines work on one study, each asking it for its next
trial, and `--push origin` sends each finished experiment and the run cache to the git and
DVC remotes, so any clone can pull the best one.

The objective is the validation accuracy the train stage logs (its last epoch, in
reports/train/metrics.json); the test set never guides the search: its accuracy is read for
the best trial only, in the report.

Reproducible: trial N is drawn by a TPE sampler seeded with `seed + N` (its floats cut to 6
significant digits, see sampler.py), from the trials numbered up to N - jobs (the results of
later ones are held back until then), so the same study on the same machine with the same
--jobs proposes the same trials, however the timings fall. Pruning, when on, judges a trial
against whatever has finished at that moment, so a pruned search is not repeatable to the
trial.

Interruptions lose no finished trial: each one's result is in the study the moment it
finishes (a user attribute, until it is told), Ctrl-C stops the running trials and marks them
failed, and after `kill -9` the next run of the same command finds this machine's orphaned
trials, stops their processes, and records each as finished (its experiment exists) or failed.

    python -m mnist_classifier.tune [--trials N] [--jobs J] [--storage URL] [--push REMOTE]
    (or `make tune TRIALS=16 JOBS=2`, `mnist-tune`)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_classifier import processes
from mnist_classifier.cli import run_command
from mnist_classifier.errors import PipelineError, first_line, raise_if_interrupted
from mnist_classifier.experiments import experiment_ref, git, validation_accuracy
from mnist_classifier.search_space import TUNE_FILE, Settings, load_settings, override

if TYPE_CHECKING:
    import optuna

STATE_DIR = Path(".tune")  # gitignored: the default journal, each trial's log and epoch curve
REPORT_DIR = Path("reports/tune")  # gitignored: results.md and the figures, per study
HEARTBEAT_S = 20  # database storages: a trial whose machine is silent for GRACE_S is failed
GRACE_S = 120
POLL_S = 0.5
MAX_FAILED_IN_A_ROW = 3  # then something is wrong with every trial, not with one


# --- the study --------------------------------------------------------------------------


def shown(url: str) -> str:
    """A storage URL as it may be printed: without its password."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        return make_url(url).render_as_string(hide_password=True)
    return url.split("://", 1)[0] + "://..."


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """Optuna's storage for a URL (a database Optuna supports) or a path (a journal file).

    Nothing trains before this succeeds: an unreachable server is one line here.
    """
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url is None:
        STATE_DIR.mkdir(exist_ok=True)
        url = str(STATE_DIR / "journal.log")
    if "://" not in url:
        path = Path(url)
        if not path.parent.is_dir():
            raise PipelineError(
                f"the study's journal {url}: its directory does not exist; create it or fix --storage."
            )
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": 10}
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
                )
            except (IntegrityError, ProgrammingError):
                # Two machines creating Optuna's tables at once in a new database: one of them
                # loses the race (a duplicate type or table); the tables exist on the next try.
                if attempt == 4:
                    raise
                time.sleep(1 + attempt)
    except ImportError:
        raise PipelineError(
            f"no database driver for {shown(url)}; this project ships psycopg for postgresql:// URLs."
        ) from None
    except Exception as exc:  # SQLAlchemy's errors: a wrong URL, a server down, a refused login
        raise PipelineError(
            f"cannot open the study's storage {shown(url)}: {first_line(exc)}. Check --storage / STORAGE=."
        ) from None


def open_study(settings: Settings, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The study named in tune.yaml: created, or joined where it exists (a resume, or another machine)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
        if settings.pruning
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            study_name=settings.study,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            pruner=pruner,
        )
    except Exception as exc:
        raise PipelineError(f"cannot open study {settings.study!r}: {first_line(exc)}") from None
    model = study.user_attrs.get("model")
    if model is None:
        study.set_user_attr("model", settings.model)
    elif model != settings.model:
        raise PipelineError(
            f"study {settings.study!r} searches the {model} model, not {settings.model}; "
            "give this search its own name (tune.yaml `study:`, or --study)."
        )
    return study


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=done)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(pgid: int, sig: int = signal.SIGTERM, wait_s: float = 20) -> None:
    """Stop a trial's process group (dvc and the stage it runs), then make sure it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            os.killpg(pgid, 0)
            time.sleep(0.2)
        os.killpg(pgid, signal.SIGKILL)


def recover(study: optuna.Study) -> list[str]:
    """Settle this machine's trials left running by a search that was killed: each becomes
    finished (its result was recorded, or its experiment exists) or failed. Trials of a live
    search, here or on another machine, are left alone."""
    import optuna

    host, notes = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or "pid" not in attrs or _alive(attrs["pid"]):
            continue
        outcome = attrs.get("outcome")
        if outcome is None:
            if "pgid" in attrs:
                _stop_group(attrs["pgid"])
            value = validation_accuracy(experiment_ref(attrs["baseline"], attrs["experiment"]))
            outcome = {"state": "COMPLETE", "value": value} if value is not None else {"state": "FAIL"}
        state = optuna.trial.TrialState[outcome["state"]]
        study.tell(
            trial.number, outcome.get("value") if state != optuna.trial.TrialState.FAIL else None, state=state
        )
        notes.append(
            f"trial {trial.number} ({attrs['experiment']}), left by a killed search: {state.name.lower()}"
        )
    return notes


# --- trials as experiments ----------------------------------------------------------------


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


def draw(study: optuna.Study, settings: Settings) -> tuple[optuna.Trial, dict[str, Any]]:
    """Ask the study for a trial and draw its params."""
    from mnist_classifier.sampler import ShortFloatTPE

    trial = study.ask()
    # Seeded by the trial's own number, so the same history gives the same proposal, on a resume
    # too. Its number, not a count of trials taken before ask(): two machines that count at the
    # same moment would draw the same params. TPE draws in suggest(), after this.
    study.sampler = ShortFloatTPE(seed=settings.seed + trial.number, n_startup_trials=settings.startup_trials)
    return trial, {param.key: param.suggest(trial) for param in settings.params}


def start_trial(study: optuna.Study, settings: Settings, baseline: str, threads: int) -> Running:
    """Ask the study for a trial and start it as a DVC experiment in a temporary workspace."""
    trial, values = draw(study, settings)
    name = f"{settings.study}-{trial.number}"
    for dirname in ("logs", "progress"):
        (STATE_DIR / dirname).mkdir(parents=True, exist_ok=True)
    log, progress = STATE_DIR / "logs" / f"{name}.log", STATE_DIR / "progress" / f"{name}.jsonl"
    progress.unlink(missing_ok=True)
    overrides = [override("model", settings.model)] + [override(k, v) for k, v in values.items()]
    cmd = [sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", name]
    for item in overrides:
        cmd += ["-S", item]
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
            _stop_group(run.proc.pid, signal.SIGINT)
            return


def outcome_of(run: Running, returncode: int) -> dict[str, Any]:
    """What a trial that has ended scored, and a line about it."""
    seconds = round(time.monotonic() - run.started, 1)
    if run.pruned:
        return {
            "state": "PRUNED",
            "value": run.last_value,
            "seconds": seconds,
            "line": f"pruned after {run.epochs_seen} epochs",
        }
    if returncode == 0 and (value := validation_accuracy(run.ref)) is not None:
        return {
            "state": "COMPLETE",
            "value": value,
            "seconds": seconds,
            "line": f"validation accuracy {value:.4f}",
        }
    lines = [x for x in run.log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    why = lines[-1].strip() if returncode else "it ran, but left no validation accuracy"
    return {"state": "FAIL", "seconds": seconds, "line": f"failed: {why} (log: {run.log})"}


def push(remote: str, name: str) -> str | None:
    """Send an experiment, its outputs and the run cache to the git and DVC remotes; None when done."""
    for attempt in range(3):  # DVC's lock may be held for a moment by a trial starting
        proc = processes.run("dvc", "exp", "push", "--run-cache", remote, name)
        if proc.returncode == 0:
            return None
        time.sleep(2 * (attempt + 1))
    return processes.error_line(proc)


@contextlib.contextmanager
def interrupt_deferred():
    """Hold Ctrl-C until the block ends: a trial asked of the study but not yet known as
    running, or finished and no longer running but not yet held for telling, would be left
    RUNNING in the study by a KeyboardInterrupt in between (CI's run caught the second)."""
    caught: list[int] = []
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started as `cmd &` by a script: no Ctrl-C
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


@dataclass
class Search:
    """One machine's part of a study: up to `jobs` trials at a time until `trials` have finished."""

    settings: Settings
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    trials: int
    jobs: int
    push_to: str | None = None
    baseline: str = ""
    running: dict[int, Running] = field(default_factory=dict)
    held: dict[int, tuple[optuna.Trial, dict[str, Any]]] = field(default_factory=dict)
    failed_in_a_row: int = 0
    last_failure: str = ""

    def done(self) -> int:
        return len(finished(self.study)) + sum(o["state"] != "FAIL" for _, o in self.held.values())

    def tell(self, upto: float) -> None:
        """Tell the study the held results of trials numbered up to `upto`, in order."""
        import optuna

        for number in sorted(n for n in self.held if n <= upto):
            trial, outcome = self.held.pop(number)
            state = optuna.trial.TrialState[outcome["state"]]
            value = None if state == optuna.trial.TrialState.FAIL else outcome.get("value")
            self.study.tell(trial, value, state=state, skip_if_finished=True)

    def may_start(self) -> bool:
        if len(self.running) >= self.jobs or self.done() + len(self.running) >= self.trials:
            return False
        number = len(self.study.get_trials(deepcopy=False))
        # Trial N is drawn from trials up to N - jobs only: wait for the oldest to finish.
        return all(n > number - self.jobs for n in self.running)

    def start(self) -> None:
        number = len(self.study.get_trials(deepcopy=False))
        self.tell(upto=number - self.jobs)
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        run = start_trial(self.study, self.settings, self.baseline, threads)
        self.running[run.trial.number] = run

    def poll(self) -> None:
        for number, run in list(self.running.items()):
            follow_epochs(run)
            returncode = run.proc.poll()
            if returncode is None:
                continue
            with interrupt_deferred():  # moved from running to held whole, or Ctrl-C would lose it
                del self.running[number]
                outcome = outcome_of(run, returncode)
                run.trial.set_user_attr("seconds", outcome["seconds"])
                told = {k: outcome[k] for k in ("state", "value") if k in outcome}
                run.trial.set_user_attr("outcome", told)
                self.held[number] = (run.trial, outcome)
                print(
                    f"tune: trial {number} ({run.name}) {outcome['line']}, {outcome['seconds']:.0f} s",
                    flush=True,
                )
            if outcome["state"] == "FAIL":
                self.failed_in_a_row, self.last_failure = self.failed_in_a_row + 1, outcome["line"]
                if self.failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                    raise PipelineError(
                        f"{self.failed_in_a_row} trials in a row failed, the last {self.last_failure}; "
                        "fix that, then the same command resumes the study."
                    )
                continue
            self.failed_in_a_row = 0
            pushing = self.push_to and outcome["state"] == "COMPLETE"
            if pushing and (problem := push(self.push_to, run.name)):
                print(
                    f"tune: warning: `dvc exp push {self.push_to} {run.name}` failed: {problem}",
                    flush=True,
                )

    def heartbeat(self) -> None:
        """Database storages: tell the study this machine's trials are alive; fail other
        machines' trials that have gone silent."""
        import optuna

        if isinstance(self.storage, optuna.storages.RDBStorage):  # Optuna's heartbeat, as optimize() beats it
            for trial in [run.trial for run in self.running.values()] + [t for t, _ in self.held.values()]:
                self.storage.record_heartbeat(trial._trial_id)
            optuna.storages.fail_stale_trials(self.study)

    def stop(self, why: str) -> None:
        """Stop every running trial (DVC cleans up on SIGINT) and record it as failed, cut."""
        for run in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGINT)
        for number, run in list(self.running.items()):
            _stop_group(run.proc.pid, signal.SIGINT, wait_s=30)
            run.proc.wait()
            run.trial.set_user_attr("cut", why)
            self.held[number] = (run.trial, {"state": "FAIL"})
        self.running.clear()
        self.tell(upto=float("inf"))

    def run(self) -> None:
        self.baseline = git("rev-parse", "HEAD")
        beat = 0.0
        try:
            while True:
                if self.may_start():
                    with interrupt_deferred():
                        self.start()
                    continue
                if not self.running:
                    break
                self.poll()
                if time.monotonic() - beat > HEARTBEAT_S / 2:
                    self.heartbeat()
                    beat = time.monotonic()
                time.sleep(POLL_S)
                raise_if_interrupted()  # a Ctrl-C that a finaliser swallowed
        except KeyboardInterrupt:
            self.stop("interrupted")
            raise PipelineError(
                f"interrupted: {self.done()} trials of study {self.settings.study!r} are finished and kept; "
                "the same command resumes it."
            ) from None
        except BaseException:
            self.stop("the search stopped")
            raise
        self.tell(upto=float("inf"))


def check_names(settings: Settings, study: optuna.Study, baseline: str) -> None:
    """A new study must not reuse the experiment names of an old one (DVC would refuse them)."""
    if study.get_trials(deepcopy=False):
        return
    old = git("for-each-ref", "--format=%(refname)", f"refs/exps/{baseline[:2]}/{baseline[2:]}/")
    clash = [
        ref.rsplit("/", 1)[1]
        for ref in old.splitlines()
        if ref.rsplit("/", 1)[1].startswith(f"{settings.study}-")
    ]
    if clash:
        raise PipelineError(
            f"experiments named {settings.study}-N exist already ({', '.join(sorted(clash)[:3])}...), "
            "from an earlier study of that name; give this one a new name (tune.yaml `study:`, or --study) "
            f"or remove them: dvc exp remove {' '.join(sorted(clash))}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--space", type=Path, default=TUNE_FILE, help="the search's settings (default: tune.yaml)"
    )
    parser.add_argument(
        "--trials", type=int, help="finished trials the study should reach (default: tune.yaml's)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="trials side by side on this machine (default 1)")
    parser.add_argument(
        "--storage", help="a database URL (postgresql://...) or journal file (default .tune/journal.log)"
    )
    parser.add_argument("--study", help="the study's name (default: tune.yaml's)")
    parser.add_argument(
        "--push", metavar="REMOTE", help="after each trial: dvc exp push --run-cache REMOTE <trial>"
    )
    args = parser.parse_args(argv)
    if args.trials is not None and args.trials < 1 or args.jobs < 1:
        parser.error("--trials and --jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    from dataclasses import replace

    from mnist_classifier.tune_report import write_report

    args = parse_args(argv)
    settings = load_settings(args.space)
    if args.study:
        settings = replace(settings, study=args.study)
        load_settings_name_check(settings.study)
    trials = args.trials or settings.trials
    if not Path("dvc.yaml").is_file() or processes.run("git", "rev-parse", "HEAD").returncode:
        raise PipelineError("run this from the project's root, in a git repo with at least one commit.")
    storage = open_storage(args.storage)
    study = open_study(settings, storage)
    for note in recover(study):
        print(f"tune: {note}", flush=True)
    baseline = git("rev-parse", "HEAD")
    check_names(settings, study, baseline)
    left = max(0, trials - len(finished(study)))
    where = shown(args.storage) if args.storage else str(STATE_DIR / "journal.log")
    print(
        f"tune: study {settings.study!r} ({where}): {len(finished(study))} of {trials} trials finished; "
        f"{left} to go, {args.jobs} at a time",
        flush=True,
    )
    Search(settings, study, storage, trials, args.jobs, args.push).run()
    print(write_report(study, settings, REPORT_DIR / settings.study, pushed=args.push))


def load_settings_name_check(name: str) -> None:
    from mnist_classifier.search_space import STUDY_NAME

    if not STUDY_NAME.fullmatch(name):
        raise PipelineError(f"--study {name!r}: a study's name is letters, digits, '.', '_' and '-'.")


def cli() -> None:
    """The `mnist-tune` console script."""
    run_command("tune", main)


if __name__ == "__main__":
    cli()
