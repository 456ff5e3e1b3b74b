"""How every command of this project starts and ends: paths from the command line, and
one clear line (not a traceback) for any failure the user can fix."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from mnist_classifier.errors import PipelineError, on_sigint


def run_command(name: str, main: Callable[[], int | None]) -> None:
    """Run a stage's or a command's main(): one clear line on stderr and a non-zero exit on failure.

    PipelineError means bad input (exit 1); Ctrl-C exits 130 without a traceback wall.
    Any other exception is a bug: its traceback, then a line saying so (exit 1). A main() that answered some
    inputs and refused others returns its exit status (1).
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # `cmd &` in a script ignores it
        signal.signal(signal.SIGINT, on_sigint)
    try:
        status = main()
    except PipelineError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; no output was written.", file=sys.stderr)
        sys.exit(130)
    except Exception:  # not the input: a bug in this code, so its traceback matters
        traceback.print_exc()
        print(
            f"{name}: internal error: this is a bug in {name}, not a problem with your input; "
            "please report it with the traceback above.",
            file=sys.stderr,
        )
        sys.exit(1)
    if status:
        sys.exit(status)


def run_program(name: str, main: Callable[[], int | None]) -> NoReturn:
    """run_command() as a process's entry point (`python -m stages.train`, `mnist-predict`),
    which then exits without Python's interpreter teardown.

    Once Keras has loaded its backend, that teardown (every module and object freed one by
    one, the backends' C++ destructors) takes about 1 s of a tiny train or evaluate stage on
    2 cores, after every output is written and renamed into place (benchmarks/RESULTS.md,
    2026-12-02): paid again by each stage of each `dvc exp run`, queued run and trial. What an
    ordinary exit does that anything here relies on is done first, in Python's order:
    threading's exit hooks run and other threads are joined, then the atexit handlers
    (logging's flush among them), then stdout and stderr are flushed. Code that runs a stage
    in its own interpreter (tests, mutation testing) calls run_command(), which raises
    SystemExit as usual.
    """
    try:
        run_command(name, main)
        status = 0
    except SystemExit as exc:  # what sys.exit() makes of its argument
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    exit_now(status)


def exit_now(status: int) -> NoReturn:
    """End the process with `status` the way sys.exit() would, minus the interpreter's teardown."""
    # Python's own exit, up to its teardown: threading's exit hooks (a thread pool's idle
    # workers are told to stop) and a wait for every non-daemon thread, then the atexit handlers.
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing to deliver
            stream.flush()
    os._exit(status)


def stage_paths(doc: str, *names: str) -> argparse.Namespace:
    """Parse a stage's command line: each name is a required path option.

    `stage_paths(__doc__, "data", "train_log")` reads `--data PATH --train-log PATH` into
    `args.data` and `args.train_log`, as Paths. dvc.yaml passes every path, so each is required.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, required=True)
    return parser.parse_args()
