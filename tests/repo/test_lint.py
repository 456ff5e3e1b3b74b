"""House rules: ruff's lint and format checks (settings in pyproject.toml) hold for the whole
project, so a violation turns the test suite, and with it CI, red."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

CHECKS = {"lint": ["check"], "format": ["format", "--check"]}


def ruff(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "."], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("check", CHECKS)
def test_the_project_passes_ruff(check: str) -> None:
    proc = ruff(ROOT, *CHECKS[check])
    assert proc.returncode == 0, (
        f"`ruff {' '.join(CHECKS[check])}` (make {check}):\n{proc.stdout}{proc.stderr}"
    )


@pytest.mark.parametrize(
    "check, planted, found",
    [
        ("lint", "import os\n", "F401"),  # an unused import
        ("lint", "def f(x):\n    return x == None\n", "E711"),
        ("format", "x = {  'a':1 }\n", "would be reformatted"),
        (
            "format",
            "y = 1\n" + "z = [" + ", ".join(["1"] * 60) + "]\n",
            "would be reformatted",
        ),  # a long line
    ],
)
def test_ruff_goes_red_on_a_planted_violation(tmp_path: Path, check: str, planted: str, found: str) -> None:
    copy = tmp_path / "project"
    shutil.copytree(
        ROOT / "mnist_classifier", copy / "mnist_classifier", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    assert ruff(copy, *CHECKS[check]).returncode == 0  # the control: clean before the plant
    (copy / "mnist_classifier" / "planted.py").write_text('"""Planted."""\n\n' + planted)
    proc = ruff(copy, *CHECKS[check])
    assert proc.returncode == 1 and found in proc.stdout + proc.stderr, proc.stdout + proc.stderr
