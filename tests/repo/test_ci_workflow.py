"""The GitHub Actions workflow, checked offline with real linters (GitHub is out of reach).

check-jsonschema validates it against GitHub's published workflow schema, and zizmor
audits it for the known security mistakes (template injection, unpinned actions, token
permissions, persisted credentials). actionlint itself is not installable here (its
PyPI package downloads a binary while building).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pr-report.yml"


def lint(path: Path) -> list[subprocess.CompletedProcess]:
    tools = [shutil.which("check-jsonschema"), shutil.which("zizmor")]
    assert all(tools), "check-jsonschema and zizmor come with requirements.lock"
    return [
        subprocess.run(
            [tools[0], "--builtin-schema", "vendor.github-workflows", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        ),
        subprocess.run(
            [tools[1], "--offline", "--no-progress", str(path)], capture_output=True, text=True, timeout=120
        ),
    ]


def test_the_workflow_passes_both_linters() -> None:
    for proc in lint(WORKFLOW):
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "breakage, text",
    [
        (("pull_request:", "pull_requets:"), "pull_requets"),  # not an event: the schema refuses it
        (('--base "origin/$BASE_REF"', '--base "origin/${{ github.head_ref }}"'), "template-injection"),
        (("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", "actions/checkout@main"), "unpinned"),
    ],
)
def test_the_linters_catch_a_broken_workflow(tmp_path: Path, breakage: tuple[str, str], text: str) -> None:
    """Each linter is seen to fail, so its pass above means something."""
    broken = tmp_path / ".github" / "workflows" / "pr-report.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace(*breakage))
    results = lint(broken)
    assert any(p.returncode != 0 and text in p.stdout + p.stderr for p in results), "\n".join(
        p.stdout + p.stderr for p in results
    )


def test_the_workflow_runs_the_readme_test_command_and_the_report_script() -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["report"]["steps"]
    commands = "\n".join(s.get("run", "") for s in steps)
    assert "make test" in commands and "dvc repro" in commands
    assert "python -m mnist_classifier.report" in commands and "gh pr comment" in commands
    assert "dvc pull --run-cache" in commands


def test_a_fork_s_pull_request_passes_with_the_report_as_summary_and_artifact() -> None:
    """A fork's token is read-only: commenting would fail the job. The comment step runs only
    for pull requests from this repository; the report goes to the job summary and artifact."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["report"]["steps"]
    comment = next(s for s in steps if "gh pr comment" in s.get("run", ""))
    assert comment.get("if") == "github.event.pull_request.head.repo.full_name == github.repository"
    report = next(s for s in steps if "mnist_classifier.report" in s.get("run", ""))
    assert 'cat report.md >> "$GITHUB_STEP_SUMMARY"' in report["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "report.md" in upload["with"]["path"]


def test_make_uses_the_python_the_workflow_installs() -> None:
    """`make` would pick the newest Python on the runner; the workflow hands it setup-python's."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["report"]["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    test = next(s for s in steps if "make test" in s.get("run", ""))
    assert test["run"] == 'make test PYTHON="$PYTHON"'
    assert test["env"]["PYTHON"] == "${{ steps." + setup["id"] + ".outputs.python-path }}"
