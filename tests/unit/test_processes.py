"""One way to run git and dvc, and to say in one line why they failed."""

from __future__ import annotations

import subprocess

import pytest

from mnist_classifier import processes
from mnist_classifier.errors import PipelineError, first_line

DVC_FOOTER = "\nHaving any troubles? Hit us up at https://dvc.org/support, we are always happy to help!\n"


@pytest.mark.parametrize(
    "stdout, stderr, line",
    [
        (
            "",
            "ERROR: failed to push data to the cloud - 1 files failed to upload" + DVC_FOOTER,
            "ERROR: failed to push data to the cloud - 1 files failed to upload",
        ),
        (
            "",
            "fatal: not a git repository (or any of the parent directories): .git\n",
            "fatal: not a git repository (or any of the parent directories): .git",
        ),
        ("some progress\nlast words\n", "", "last words"),
        ("", "", "exit 3"),
    ],
)
def test_error_line_is_the_line_that_says_what_went_wrong(stdout: str, stderr: str, line: str) -> None:
    proc = subprocess.CompletedProcess(["dvc"], 3, stdout, stderr)
    assert processes.error_line(proc) == line
    with pytest.raises(PipelineError, match=r"^`dvc push` failed: ") as err:
        processes.checked(proc, "`dvc push`")
    assert str(err.value) == f"`dvc push` failed: {line}"


def test_run_uses_this_interpreter_s_dvc_and_never_raises_for_the_exit_code(tmp_path) -> None:
    version = processes.run("dvc", "--version")
    assert version.returncode == 0 and version.stdout.strip()[0].isdigit()
    outside = subprocess.run(["git", "-C", str(tmp_path), "status"], capture_output=True, text=True)
    assert outside.returncode != 0
    proc = processes.run("git", "-C", str(tmp_path), "status")
    assert proc.returncode == outside.returncode and processes.error_line(proc).startswith("fatal:")


@pytest.mark.parametrize(
    "exc, line",
    [
        (ValueError("\n  first\nsecond"), "first"),
        (KeyError(), "KeyError"),
        ("plain text\nmore", "plain text"),
    ],
)
def test_first_line_of_a_message(exc: BaseException | str, line: str) -> None:
    assert first_line(exc) == line
