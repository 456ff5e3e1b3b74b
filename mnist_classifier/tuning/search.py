"""The scheduler: one machine's part of a study, up to `jobs` trials at a time until the study
has `trials` finished ones.

Reproducible: trial N is drawn from the trials numbered up to N - jobs only (the results of
later ones are held back, not told, until then), so the same study with the same --jobs
proposes the same trials however the timings fall. Three failures in a row stop the search:
then something is wrong with every trial, not with one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mnist_classifier.errors import PipelineError, raise_if_interrupted
from mnist_classifier.tuning import trials
from mnist_classifier.tuning.experiments import validation_accuracy
from mnist_classifier.tuning.search_space import Settings
from mnist_classifier.tuning.study import HEARTBEAT_S, finished
from mnist_classifier.tuning.trials import Outcome, Running

if TYPE_CHECKING:
    import optuna

POLL_S = 0.5
MAX_FAILED_IN_A_ROW = 3


@contextlib.contextmanager
def interrupt_deferred() -> Iterator[None]:
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
    """One machine's part of a study. `command` and `score` say what a trial runs and how its
    result is read (a `dvc exp run`, its validation accuracy); the scheduler's tests swap them."""

    settings: Settings
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    trials: int
    jobs: int
    baseline: str
    push_to: str | None = None
    command: Callable[[str, list[str]], list[str]] = trials.dvc_command
    score: Callable[[str], float | None] = validation_accuracy
    running: dict[int, Running] = field(default_factory=dict)
    held: dict[int, tuple[optuna.Trial, Outcome]] = field(default_factory=dict)
    failed_in_a_row: int = 0

    def done(self) -> int:
        return len(finished(self.study)) + sum(o.state != "FAIL" for _, o in self.held.values())

    def tell(self, upto: float) -> None:
        """Tell the study the held results of trials numbered up to `upto`, in order."""
        for number in sorted(n for n in self.held if n <= upto):
            trial, outcome = self.held.pop(number)
            trials.tell(self.study, trial, outcome)

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
        run = trials.start(self.study, self.settings, self.baseline, threads, self.command)
        self.running[run.trial.number] = run

    def poll(self) -> None:
        for number, run in list(self.running.items()):
            trials.follow_epochs(run)
            returncode = run.proc.poll()
            if returncode is None:
                continue
            with interrupt_deferred():  # moved from running to held whole, or Ctrl-C would lose it
                del self.running[number]
                outcome = trials.judge(run, returncode, self.score)
                run.trial.set_user_attr("seconds", outcome.seconds)
                run.trial.set_user_attr("outcome", outcome.record())
                self.held[number] = (run.trial, outcome)
                print(
                    f"tune: trial {number} ({run.name}) {outcome.line}, {outcome.seconds:.0f} s", flush=True
                )
            if outcome.state == "FAIL":
                self.failed_in_a_row += 1
                if self.failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                    raise PipelineError(
                        f"{self.failed_in_a_row} trials in a row failed, the last {outcome.line}; "
                        "fix that, then the same command resumes the study."
                    )
                continue
            self.failed_in_a_row = 0
            self.share(run.name, outcome)

    def share(self, name: str, outcome: Outcome) -> None:
        """With `--push`, send a finished trial to the remotes; a failed push is a warning."""
        if warning := trials.share(self.push_to, name, outcome):
            print(f"tune: {warning}", flush=True)

    def heartbeat(self) -> None:
        """Database storages: tell the study this machine's trials are alive; fail other
        machines' trials that have gone silent."""
        import optuna

        if isinstance(self.storage, optuna.storages.RDBStorage):  # Optuna's heartbeat, as optimize() beats it
            for trial in [run.trial for run in self.running.values()] + [t for t, _ in self.held.values()]:
                self.storage.record_heartbeat(trial._trial_id)
            optuna.storages.fail_stale_trials(self.study)

    def stop(self, why: str) -> None:
        """Stop every running trial (DVC cleans up on SIGINT) and record it as failed, cut,
        unless it had finished: then it is kept as any finished trial is."""
        for run in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGINT)
        for number, run in list(self.running.items()):
            trials.stop_group(run.proc.pid, signal.SIGINT, wait_s=30, leader=run.proc)
            outcome = trials.judge(run, run.proc.wait(), self.score, cut=why)
            if outcome.state == "FAIL":
                run.trial.set_user_attr("cut", why)
            else:
                run.trial.set_user_attr("outcome", outcome.record())
                print(f"tune: trial {number} ({run.name}) {outcome.line}", flush=True)
                self.share(run.name, outcome)
            self.held[number] = (run.trial, outcome)
        self.running.clear()
        self.tell(upto=float("inf"))

    def run(self) -> None:
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
