"""The results of a search, for a person: a Markdown table of the trials, the best one's
experiment and the command that makes it the workspace, and two figures (Optuna's own
matplotlib plots: the optimisation history and the params' importance).

The best trial is chosen on validation accuracy; its test accuracy is read once, here, and
shown for it alone, so the table never invites picking a trial by the test set.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_classifier.files import atomic_output
from mnist_classifier.tables import markdown_table
from mnist_classifier.tuning.experiments import experiment_exists, experiment_ref, test_accuracy
from mnist_classifier.tuning.search_space import Settings

if TYPE_CHECKING:
    import optuna


def cell(value: Any) -> str:
    """A param's value as the table shows it: [512, 512] as 512×2."""
    if isinstance(value, list):
        return f"{value[0]}×{len(value)}" if value and all(v == value[0] for v in value) else str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def trial_rows(study: optuna.Study, settings: Settings) -> tuple[list[str], list[list[str]], Any]:
    """The table's header and rows, and the best trial (or None)."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    keys = [p.key for p in settings.params]
    header = ["trial", "experiment", "state", *keys, "val accuracy", "test accuracy", "time"]
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        params = attrs.get("params", {})
        value = f"{trial.value:.4f}" if trial.value is not None else "–"
        if trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
            value = f"({trial.intermediate_values[trial.last_step]:.4f} at epoch {trial.last_step + 1})"
        test = "–"
        if best is not None and trial.number == best.number:
            found = test_accuracy(experiment_ref(attrs["baseline"], attrs["experiment"]))
            test = f"**{found:.4f}**" if found is not None else "not here (dvc exp pull)"
            value = f"**{value}**"
        seconds = attrs.get("seconds")
        rows.append(
            [
                str(trial.number),
                attrs.get("experiment", "–"),
                trial.state.name.lower() + (f" ({attrs['cut']})" if "cut" in attrs else ""),
                *(cell(params[k]) if k in params else "–" for k in keys),
                value,
                test,
                f"{seconds:.0f} s" if seconds is not None else "–",
            ]
        )
    return header, rows, best


def figures(study: optuna.Study, out: Path) -> list[str]:
    """Optuna's optimisation history and param importances as PNGs; what was drawn, or why not."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    from mnist_classifier.figures import pyplot

    plt = pyplot()

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    notes = []
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    plots = {"history.png": ovm.plot_optimization_history, "importance.png": ovm.plot_param_importances}
    for name, plot in plots.items():
        if name == "importance.png" and len({t.value for t in complete}) < 2:
            notes.append(f"{name}: needs two finished trials that scored differently")
            continue
        try:
            ax = plot(study)
        except (ValueError, RuntimeError) as exc:  # too few trials for Optuna to plot
            notes.append(f"{name}: {exc}")
            continue
        fig = ax.figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        with atomic_output(out / name) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        notes.append(str(out / name))
    return notes


def write_report(study: optuna.Study, settings: Settings, out: Path, pushed: str | None = None) -> str:
    """Write out/results.md and the figures; return the text to print."""
    header, rows, best = trial_rows(study, settings)
    text = [
        f"## Study `{settings.study}` ({settings.model}): {len(rows)} trials",
        "",
        markdown_table(header, rows),
        "",
    ]
    if best is None:
        text.append("No trial has finished yet.")
    else:
        name = best.user_attrs["experiment"]
        here = experiment_exists(experiment_ref(best.user_attrs["baseline"], name))
        text.append(
            f"Best, on validation accuracy: trial {best.number}, experiment `{name}` ({best.value:.4f})."
        )
        text.append(
            "Keep it: the committed default, in conf/ too, where every later `dvc exp run` starts "
            "(no training: its outputs come from the DVC cache):"
        )
        text.append("")
        pull = f"dvc exp pull {pushed or 'origin'} {name} && " if not here or pushed else ""
        text.append(f"    {pull}make keep NAME={name}")
    out.mkdir(parents=True, exist_ok=True)
    drawn = figures(study, out)
    text += ["", "Figures: " + "; ".join(drawn)]
    body = "\n".join(text) + "\n"
    with atomic_output(out / "results.md") as tmp:
        tmp.write_text(body, encoding="utf-8")
    return body + f"(also in {out / 'results.md'})"
