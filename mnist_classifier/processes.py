"""git and dvc as subprocesses: one way to run them and one way to report their failures,
for every command that does (release, report, tune, workspace, experiments).

`dvc` is always this interpreter's (`python -m dvc`), not whatever `dvc` the PATH holds (or
lacks, outside the venv). A failure is reported by the line that says what went wrong:
DVC's `ERROR: ...` line, not the help footer it prints after it ("Having any troubles?").
"""

from __future__ import annotations

import subprocess
import sys

from mnist_classifier.errors import PipelineError


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `git ...` or `dvc ...`, capturing its output as text; never raises for its exit code."""
    cmd = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line of a failed run that says what went wrong: DVC's `ERROR:`, git's
    `fatal:` or `error:`, else the last line it printed, else its exit status."""
    lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error:", "fatal:"))]
    return (errors or lines[-1:] or [f"exit {proc.returncode}"])[0]


def checked(proc: subprocess.CompletedProcess, what: str) -> str:
    """proc's stdout, or a PipelineError: `<what> failed: <its error line>`."""
    if proc.returncode:
        raise PipelineError(f"{what} failed: {error_line(proc)}")
    return proc.stdout
