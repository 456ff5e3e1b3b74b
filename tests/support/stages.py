"""The stages run exactly as DVC runs them: dvc.yaml's `cmd` with its vars filled in, in a
subprocess (or in this process under mutation testing), and what a killed stage left.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import shlex
import subprocess
import sys
import traceback
from pathlib import Path

from tests.support.commands import run, tool_env
from tests.support.paths import DVC_YAML, ROOT, TINY_DATASET, VARS


def stage_command(stage: str, dataset: str = TINY_DATASET) -> list[str]:
    """The stage's `cmd` from dvc.yaml with its ${vars} (and the `dataset` param) filled in:
    exactly what DVC runs."""
    cmd = DVC_YAML["stages"][stage]["cmd"]
    for key, value in {**VARS, "dataset": dataset}.items():
        cmd = cmd.replace("${" + key + "}", str(value))
    args = shlex.split(cmd)
    assert args[0] == "python"
    return [sys.executable, *args[1:]]


def run_stage(project: Path, stage: str, **env: str) -> subprocess.CompletedProcess:
    """Run the real stage in `project` (which holds params.yaml and datasets.yaml).

    Under mutation testing (`make mutation`) the stage runs in this interpreter instead, so
    that mutmut sees which stage functions each test calls and runs it against their mutants.
    """
    if os.environ.get("MUTANT_UNDER_TEST"):
        return run_in_process(project, stage, env)
    return run(
        project,
        *stage_command(stage),
        env=tool_env(**{"PYTHONPATH": str(ROOT), **env}),
        check=False,
        timeout=120,
    )


def run_in_process(project: Path, stage: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """What `python -m stages.<stage> ...` does, without a new process: run_command(main)."""
    from mnist_classifier.cli import run_command

    argv = stage_command(stage)[2:]
    saved = os.getcwd(), sys.argv, dict(os.environ)
    out, err, code = io.StringIO(), io.StringIO(), 0
    try:
        os.chdir(project)
        sys.argv = argv
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run_command(stage, importlib.import_module(argv[0]).main)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # a bug: what a subprocess would print
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved[0])
        sys.argv = saved[1]
        os.environ.clear()
        os.environ.update(saved[2])
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def leftovers(project: Path, output: Path) -> list[str]:
    """The output itself, its temp sibling (`.<stem>.tmp*`) and any `.part` download, if present."""
    path = project / output
    found = [path] if path.exists() else []
    if path.parent.is_dir():
        found += [p for p in path.parent.iterdir() if p.name.startswith(f".{path.stem}.tmp")]
    found += list(project.rglob("*.part"))  # a download that fetch left behind
    return sorted({str(p.relative_to(project)) for p in found})
