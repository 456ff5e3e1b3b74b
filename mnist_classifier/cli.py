"""How every command of this project starts and ends: paths from the command line, and
one clear line (not a traceback) for any failure the user can fix."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

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


def stage_paths(doc: str, *names: str) -> argparse.Namespace:
    """Parse a stage's command line: each name is a required path option.

    `stage_paths(__doc__, "data", "train_log")` reads `--data PATH --train-log PATH` into
    `args.data` and `args.train_log`, as Paths. dvc.yaml passes every path, so each is required.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, required=True)
    return parser.parse_args()
