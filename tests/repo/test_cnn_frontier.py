"""benchmarks/cnn_frontier.py end to end on a tiny project: the peer and the project's CNN
each trained for real (one epoch), its table and its figure written. A second setting
(`--settings "" cnn.dense_units=4`) runs the same loop as the default, so it is not run here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.commands import git, tool_env
from tests.support.paths import ROOT
from tests.support.projects import tiny_project

pytestmark = pytest.mark.slow


def test_the_frontier_benchmark_runs_the_peer_and_the_cnn_over_seeds_and_draws_them(tmp_path: Path) -> None:
    from PIL import Image

    proj, mirror = tiny_project(tmp_path)
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "tiny project")
    results, figure = tmp_path / "RESULTS.md", tmp_path / "frontier.png"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "cnn_frontier.py"), "--project", str(proj)]
    cmd += ["--dataset", "tiny", "--peer-epochs", "1", "--settings", ""]
    cmd += ["--seeds", "1", "--results", str(results), "--figure", str(figure)]
    proc = subprocess.run(
        cmd, env=tool_env(DATA_MIRROR=str(mirror)), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = results.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| run")]
    assert len(rows) == 3, text  # the peer, the default, the default at seed 1
    assert "mnist_convnet" in rows[0] and "(default)" in rows[1] and "seeds 1" in rows[2]
    for row in rows:
        accuracy = float(row.split("|")[3].split()[0])
        assert 0.0 <= accuracy <= 1.0
    assert (
        "The default CNN / the peer, wall time:" in text and "](frontier.png)" in text
    )  # beside the results file
    with Image.open(figure) as image:
        assert image.format == "PNG" and image.width >= 600
    # Each run trained (the script stops when DVC restored one instead); the last was seed 1.
    import yaml

    assert yaml.safe_load((proj / "params.yaml").read_text())["seed"] == 1
