"""benchmarks/cnn_frontier.py end to end on a tiny project: the peer and the project's CNN
each trained for real, the shift-averaged evaluation on the same model (no training), an
earlier point given by hand; its table and its figure written. A second seed runs the same
loop as the first, and an extra setting the same `dvc exp run` as the default, so neither is
run here."""

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
    cmd += ["--dataset", "tiny", "--peer-epochs", "1", "--settings", "--shift-average"]
    cmd += [
        "--seeds",
        "1",
        "--reference",
        "old CNN=7.9,0.9964",
        "--results",
        str(results),
        "--figure",
        str(figure),
    ]
    proc = subprocess.run(
        cmd, env=tool_env(DATA_MIRROR=str(mirror)), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = results.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| run")]
    assert len(rows) == 3, text  # the peer, the default, shift-averaged
    assert "mnist_convnet" in rows[0] and "(default), seeds 1" in rows[1] and "shift_average" in rows[2]
    for row in rows:
        wall, cpu, accuracy = (float(cell.split()[0]) for cell in row.split("|")[2:5])
        assert wall > 0 and cpu > 0 and 0.0 <= accuracy <= 1.0
    assert "The default CNN / the peer, round by round: wall time" in text and "Shift-averaged:" in text
    assert "](frontier.png)" in text  # beside the results file
    with Image.open(figure) as image:
        assert image.format == "PNG" and image.width >= 600
    # Each run trained (the script stops when DVC restored one instead, or when the
    # shift-averaged one trained); the last was the shift-averaged one, at seed 1.
    import yaml

    last = yaml.safe_load((proj / "params.yaml").read_text())
    assert (last["seed"], last["evaluate"]["shift_average"]) == (1, True)
