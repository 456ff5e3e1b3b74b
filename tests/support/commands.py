"""Commands as a person runs them: git, the real `dvc` CLI of this environment, any program
with its output captured, and the stages a DVC log says it ran.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def ran(output: str) -> set[str]:
    """The stages DVC's output says it ran."""
    return set(re.findall(r"Running stage '(\w+)'", output))


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first on PATH (dvc runs `python`)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    # Loading a model in this process (inference.load_model) sets KERAS_BACKEND=numpy here;
    # a command started afterwards must not inherit that by accident.
    env.pop("KERAS_BACKEND", None)
    env.update(extra)
    if env.get("MUTANT_UNDER_TEST") == "stats":  # mutmut's coverage pass works in its own process only
        del env["MUTANT_UNDER_TEST"]
    return env


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run a command (e.g. `dvc repro`, `python -m stages.fetch`) and capture its output."""
    proc = subprocess.run(
        list(args), cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(
    proj: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """The real `dvc` CLI of this interpreter's environment, run in proj."""
    return run(proj, sys.executable, "-m", "dvc", *args, env=env, check=check, timeout=timeout)


def predict(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`mnist-predict <args>` (python -m mnist_classifier.predict), in the project by default."""
    from tests.support.paths import ROOT

    return run(cwd or ROOT, sys.executable, "-m", "mnist_classifier.predict", *map(str, args), check=False)


def output(proc: subprocess.CompletedProcess) -> str:
    """A command's stdout and stderr together, as a person would see them."""
    return proc.stdout + proc.stderr
