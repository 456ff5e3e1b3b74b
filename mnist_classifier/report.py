"""The pull-request report: what changed against the base branch, as Markdown.

    python -m mnist_classifier.report --base origin/main [--figures-url URL] > report.md

Holds `dvc metrics diff --md` and `dvc params diff --md` against the base revision (the
metrics file is in git, so the base needs no DVC cache), the `make compare` table of the
experiments DVC knows here, and where to see the figures. The GitHub Actions workflow
(.github/workflows/pr-report.yml) posts it as a comment; this script runs anywhere.
"""

from __future__ import annotations

import argparse

from mnist_classifier.cli import run_program
from mnist_classifier.compare import table
from mnist_classifier.composition import all_param_names
from mnist_classifier.errors import PipelineError
from mnist_classifier.processes import checked, run

FIGURES = ("training.png", "confusion_matrix.png", "misclassified.png")


def dvc_md(*args: str) -> str:
    """A `dvc ... --md` table; DVC's own error, as one line, when it fails."""
    return checked(run("dvc", *args, "--md"), f"`dvc {' '.join(args)}`").strip() or "No changes."


FETCH_EXPERIMENTS = (
    "Experiments are git refs a checkout does not fetch by itself; to include them, run "
    "`git fetch origin 'refs/exps/*:refs/exps/*'` (or `dvc exp pull origin`) before the report."
)


def experiments() -> str:
    """The comparison table, with this run (the workspace) standing for its commit, and how
    to bring in experiments when there are none here."""
    import dvc.api

    rows = dvc.api.exp_show(repo=".")
    try:
        text = table(rows, all_param_names(), workspace=True)
    except PipelineError as exc:
        text = str(exc)
    if not any(row.get("typ") not in ("baseline", None) for row in rows):
        text += "\n\nOnly this run is shown: no experiments in this checkout. " + FETCH_EXPERIMENTS
    return text


def report(base: str, figures_url: str | None) -> str:
    where = f"[the run's artifacts]({figures_url})" if figures_url else "`reports/figures/`"
    return (
        "\n\n".join(
            [
                f"## Metrics against `{base}`",
                dvc_md("metrics", "diff", base),
                f"## Params changed against `{base}`",
                dvc_md("params", "diff", base),
                "## This run and the experiments (mean ± sd over seeds)",
                experiments(),
                "## Figures",
                f"{', '.join(FIGURES)}: in {where}.",
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare with, e.g. origin/main")
    parser.add_argument("--figures-url", help="where the figures were uploaded (a link in the report)")
    args = parser.parse_args()
    # A revision git knows, checked first: `--base=-h` would reach dvc as an option, and a typo
    # would become DVC's help text pasted into the pull request.
    if (
        args.base.startswith("-")
        or run("git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}").returncode
    ):
        raise PipelineError(
            f"--base {args.base!r} is not a commit git knows here; `git fetch` it, or fix the name."
        )
    print(report(args.base, args.figures_url), end="")


def cli() -> None:
    """The `mnist-report` console script."""
    run_program("report", main)


if __name__ == "__main__":
    cli()
