"""Reading an experiment back: where DVC keeps it in git, and the metrics it recorded.

`make tune` scores each trial with these and its report reads the best trial's test
accuracy; both read the experiment itself (a git ref, files through DVC's filesystem), not
the workspace, so they work in a fresh clone that has only pulled the experiment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnist_classifier.pipeline import pipeline_path
from mnist_classifier.processes import checked, run


def experiment_ref(baseline: str, name: str) -> str:
    """Where DVC keeps an experiment's commit: refs/exps/<baseline[:2]>/<baseline[2:]>/<name>."""
    return f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}"


def git(*args: str) -> str:
    """`git <args>`'s output, stripped; a PipelineError naming git's error when it fails."""
    return checked(run("git", *args), f"`git {' '.join(args)}`").strip()


def experiment_exists(ref: str) -> bool:
    return run("git", "rev-parse", "--verify", "--quiet", ref).returncode == 0


def read_metric(ref: str, path: Path, keys: tuple[str, ...]) -> float | None:
    """A metric of an experiment (from git, or DVC's cache for a cached output), or None.

    One file through DVC's filesystem: `dvc.api.metrics_show(rev=...)` also opens the
    workspace's metrics, which fail in a fresh clone whose outputs were never pulled.
    """
    import dvc.api

    if not experiment_exists(ref):
        return None
    try:
        node: Any = json.loads(dvc.api.read(str(path), rev=ref))
        for key in keys:
            node = node[key]
    except Exception:  # a missing file or key: the run did not produce it
        return None
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def validation_accuracy(ref: str) -> float | None:
    """The objective: the train stage's last-epoch validation accuracy (dvclive's eval/accuracy)."""
    return read_metric(ref, pipeline_path("train_log") / "metrics.json", ("eval", "accuracy"))


def test_accuracy(ref: str) -> float | None:
    return read_metric(ref, pipeline_path("metrics"), ("test", "accuracy"))
