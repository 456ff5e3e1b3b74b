"""benchmarks/suite_timeline.py: the plugin records a real pytest run, the table reads it back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.commands import tool_env
from tests.support.paths import ROOT


def test_the_timeline_records_each_test_and_the_table_shows_busy_and_idle_time(tmp_path: Path) -> None:
    suite = tmp_path / "test_two.py"
    suite.write_text("import time\n\ndef test_short():\n    pass\n\ndef test_long():\n    time.sleep(1.2)\n")
    timeline = tmp_path / "timeline.jsonl"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "benchmarks.suite_timeline", "-p", "no:cacheprovider"]
    env = tool_env(TIMELINE_OUT=str(timeline))
    # A pytest of its own: not this run's options (its own timeline) nor its xdist worker's name.
    for name in [n for n in env if n == "PYTEST_ADDOPTS" or n.startswith("PYTEST_XDIST")]:
        del env[name]
    proc = subprocess.run([*cmd, str(suite)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(timeline.read_text().splitlines()) == 2

    script = ROOT / "benchmarks" / "suite_timeline.py"
    out = subprocess.run(
        [sys.executable, str(script), str(timeline)], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("tests: 2; first start to last end: 1 s"), out
    assert "| main | 2 | 1 | 0 |" in out, out  # one worker: busy all along, never idle
    slowest = out.split("| test | worker | s |\n|---|---|---|\n", 1)[1].splitlines()
    test, worker = slowest[0].split(" | ")[:2]  # the test's id is relative to wherever pytest ran
    assert test.endswith(f"{suite.name}::test_long") and worker == "main", out
