"""`make compare`: experiments grouped by everything but their seed, as a Markdown table.

One row per group of experiments whose params differ only in `seed`: the params that vary
between groups, the number of runs, and mean ± standard deviation of test accuracy and loss,
best mean accuracy first. It reads DVC's own experiment records (`dvc.api.exp_show`), so it
shows what `dvc exp show` shows: the current commit and the experiments based on it. Beside
the table, a figure of each group's runs (reports/compare.png) shows the spread itself.

    python -m mnist_classifier.compare [--figure PATH]     (or `make compare`, `mnist-compare`)
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

from mnist_classifier.cli import run_program
from mnist_classifier.composition import all_param_names
from mnist_classifier.errors import PipelineError
from mnist_classifier.tables import markdown_table

METRICS = ("test.accuracy", "test.loss")
FIGURE = Path("reports/compare.png")


FINISHED = (None, "Success")  # DVC's State of a committed run, and of a queued one that finished


def number(value: Any) -> float | None:
    """A metric as a number, or None: DVC shows a missing key as 'None' and a read error as '!'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def finished_runs(
    rows: list[dict[str, Any]], params: list[str], workspace: bool = False
) -> list[dict[str, Any]]:
    """The rows of runs that trained, each once.

    A queued experiment's copy carries the committed metrics, so a failed, queued or running
    one would show the baseline's numbers: only rows DVC marks finished count. A run whose
    params and seed equal an earlier row's (an experiment that repeats the baseline) is the
    same run and counts once. With `workspace`, the workspace (a run just made, as in CI)
    stands in for the commit it is based on; otherwise it repeats that commit and is left out.
    """
    found, seen = [], set()
    for row in rows:
        if row.get("rev") == "workspace":
            if not workspace:
                continue
        elif workspace and row.get("typ") == "baseline":  # the commit the workspace stands for
            continue
        if row.get("State") not in FINISHED:
            continue
        metrics = {m: number(row.get(m)) for m in METRICS}
        if None in metrics.values():
            continue
        identity = tuple(repr(row.get(p)) for p in params)
        if identity in seen:
            continue
        seen.add(identity)
        found.append({**row, **metrics})
    return found


def groups(
    rows: list[dict[str, Any]], params: list[str], workspace: bool = False
) -> dict[tuple, list[dict[str, Any]]]:
    """Finished runs keyed by their params other than `seed`.

    Each model has its own keys, so a key a run lacks (the CNN's `cnn.filters` on an MLP run)
    is None in its key: runs of different models never share a group.
    """
    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for row in finished_runs(rows, params, workspace):
        key = tuple((p, row.get(p)) for p in params if p != "seed")
        grouped.setdefault(key, []).append(row)
    return grouped


def spread(values: list[float]) -> str:
    """`mean ± sd` (sample standard deviation); one value has no spread to show."""
    if len(values) == 1:
        return f"{values[0]:.4f} (one run: no spread)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _cell(value: Any) -> str:
    """A param as written: `-` where a run lacks it, and 30 for the 30.0 DVC's table gives."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _seed(value: Any) -> str:
    """A seed as written (20240101, not 2.02401e+07)."""
    return str(int(value)) if number(value) is not None and float(value).is_integer() else _cell(value)


def varying(grouped: dict[tuple, list[dict[str, Any]]]) -> list[str]:
    """The params that tell the groups apart: the table's first columns.

    `model` when it varies, and any other param that differs between groups of the same
    model: a key that only follows the model (the CNN's own epochs, its `cnn.*` block) says
    nothing the `model` column does not.
    """
    keys = [dict(k) for k in grouped]
    names = []
    for name in keys[0]:
        values = {(k.get("model"), _cell(k[name])) for k in keys}
        if name == "model":
            differs = len({model for model, _ in values}) > 1
        else:
            differs = len(values) > len({model for model, _ in values})
        if differs:
            names.append(name)
    return names


def ranked(grouped: dict[tuple, list[dict[str, Any]]]) -> list[tuple]:
    """Group keys, best mean test accuracy first."""
    return sorted(grouped, key=lambda k: -statistics.mean(r["test.accuracy"] for r in grouped[k]))


def label(key: tuple, names: list[str]) -> str:
    """A group's name in the figure: its varying params, `model=cnn epochs=40`."""
    return " ".join(f"{n}={_cell(dict(key)[n])}" for n in names) or "all runs"


def table(rows: list[dict[str, Any]], params: list[str], workspace: bool = False) -> str:
    """The Markdown table, best mean test accuracy first."""
    grouped = groups(rows, params, workspace)
    if not grouped:
        raise PipelineError(
            "no experiments with test metrics yet; run some first, e.g. "
            "`dvc exp run --queue -S 'seed=1,2,3,4,5'` and `dvc queue start`."
        )
    names = varying(grouped)
    header = [*names, "runs", "seeds", "test accuracy", "test loss"]
    rows = []
    for key in ranked(grouped):
        runs = grouped[key]
        seeds = ", ".join(
            _seed(r.get("seed")) for r in sorted(runs, key=lambda r: number(r.get("seed")) or 0)
        )
        cells = [_cell(dict(key)[name]) for name in names]
        cells += [str(len(runs)), seeds, *(spread([r[m] for r in runs]) for m in METRICS)]
        rows.append(cells)
    text = markdown_table(header, rows)
    return text + "\n\nAll experiments share their params but the seed." if not names else text


def figure(rows: list[dict[str, Any]], params: list[str], path: Path) -> None:
    """The spread of test accuracy over seeds per group, best group on top (seaborn)."""
    from mnist_classifier.figures import spread_figure
    from mnist_classifier.files import atomic_output

    grouped = groups(rows, params)
    if not grouped:
        return
    names = varying(grouped)
    data = {label(k, names): [r["test.accuracy"] for r in grouped[k]] for k in ranked(grouped)}
    with atomic_output(path) as tmp:
        spread_figure(tmp, data, "test accuracy")


def main() -> None:
    import dvc.api

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--figure", type=Path, default=FIGURE, help="the spread figure (default: %(default)s)"
    )
    args = parser.parse_args()
    rows = dvc.api.exp_show(repo=".")
    params = all_param_names()
    print(table(rows, params))
    figure(rows, params, args.figure)


def cli() -> None:
    """The `mnist-compare` console script."""
    run_program("compare", main)


if __name__ == "__main__":
    cli()
