"""`make compare`: experiments grouped by everything but their seed, as a Markdown table.

One row per group of experiments whose params differ only in `seed`: the params that vary
between groups, the number of runs, and mean ± standard deviation of test accuracy and loss,
best mean accuracy first. It reads DVC's own experiment records (`dvc.api.exp_show`), so it
shows what `dvc exp show` shows: the current commit and the experiments based on it.

    python -m stages.compare      (or `make compare`)
"""

from __future__ import annotations

import statistics
from typing import Any

from stages.common import PipelineError, run_stage
from stages.params import PARAMS_FILE, read_params

METRICS = ("test.accuracy", "test.loss")


def param_names(raw: dict[str, Any], prefix: str = "") -> list[str]:
    """The flattened keys of params.yaml (`plot.samples`), as DVC names its columns."""
    names = []
    for key, value in raw.items():
        if isinstance(value, dict):
            names += param_names(value, f"{prefix}{key}.")
        else:
            names.append(prefix + key)
    return names


def groups(rows: list[dict[str, Any]], params: list[str]) -> dict[tuple, list[dict[str, Any]]]:
    """Experiments with metrics, keyed by their params other than `seed`."""
    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("rev") == "workspace" or any(row.get(m) is None for m in METRICS):
            continue  # the workspace repeats a commit; queued or failed runs have no metrics
        key = tuple((p, row.get(p)) for p in params if p != "seed")
        grouped.setdefault(key, []).append(row)
    return grouped


def spread(values: list[float]) -> str:
    """`mean ± sd` (sample standard deviation); one value has no spread to show."""
    if len(values) == 1:
        return f"{values[0]:.4f} (one run: no spread)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(rows: list[dict[str, Any]], params: list[str]) -> str:
    """The Markdown table, best mean test accuracy first."""
    grouped = groups(rows, params)
    if not grouped:
        raise PipelineError("no experiments with test metrics yet; run some first, e.g. "
                            "`dvc exp run --queue -S 'seed=1,2,3,4,5'` and `dvc queue start`.")
    keys = list(grouped)
    varying = [name for name, _ in keys[0] if len({dict(k)[name] for k in keys}) > 1]
    header = [*varying, "runs", "seeds", "test accuracy", "test loss"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_accuracy = sorted(keys, key=lambda k: -statistics.mean(r["test.accuracy"] for r in grouped[k]))
    for key in by_accuracy:
        runs = grouped[key]
        seeds = ", ".join(f"{seed:g}" for seed in sorted(r["seed"] for r in runs))
        cells = [str(dict(key)[name]) for name in varying]
        cells += [str(len(runs)), seeds, *(spread([r[m] for r in runs]) for m in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    if not varying:
        lines.append("\nAll experiments share their params but the seed.")
    return "\n".join(lines)


def main() -> None:
    import dvc.api

    rows = dvc.api.exp_show(repo=".")
    print(table(rows, param_names(read_params(PARAMS_FILE))))


if __name__ == "__main__":
    run_stage("compare", main)
