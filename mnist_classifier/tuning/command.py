"""`make tune`: an Optuna search in which every trial is a DVC experiment of this pipeline.

Why not dvclive's Optuna callback: it logs trials that train inside one Python process, so
they are neither cached nor reproducible by `dvc exp run`. Here each trial is
`dvc exp run --temp -n <study>-<number> -S key=value ...`: the whole pipeline in its own
temporary copy of the workspace, so several run side by side (each on its share of the cores,
TRAIN_THREADS), every one lands in `dvc exp show`, reruns from the run cache, compares with
`make compare` and is pushed and pulled like any other experiment.

Optuna holds the study: which params each trial got and what it scored. By default it is a
journal file in .tune/ (gitignored); with `--storage postgresql://...` (or a journal file on a
shared file system) any number of machines work on one study, each asking it for its next
trial, and `--push origin` sends each finished experiment and the run cache to the git and
DVC remotes, so any clone can pull the best one.

The objective is the validation accuracy the train stage logs (its last epoch, in
reports/train/metrics.json); the test set never guides the search: its accuracy is read for
the best trial only, in the report.

Reproducible: trial N is drawn by a TPE sampler seeded with `seed + N` (its floats cut to 6
significant digits, see tuning/sampler.py), from the trials numbered up to N - jobs (the results of
later ones are held back until then), so the same study on the same machine with the same
--jobs proposes the same trials, however the timings fall. Pruning, when on, judges a trial
against whatever has finished at that moment, so a pruned search is not repeatable to the
trial.

Interruptions lose no finished trial: each one's result is in the study the moment it
finishes (a user attribute, until it is told), Ctrl-C stops the running trials and marks them
failed, and after `kill -9` the next run of the same command finds this machine's orphaned
trials, stops their processes, and records each as finished (its experiment exists) or failed.

    python -m mnist_classifier.tuning [--trials N] [--jobs J] [--storage URL] [--push REMOTE]
    (or `make tune TRIALS=16 JOBS=2`, `mnist-tune`)
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from mnist_classifier import processes
from mnist_classifier.cli import run_program
from mnist_classifier.errors import PipelineError
from mnist_classifier.tuning.search_space import STUDY_NAME, TUNE_FILE, load_settings
from mnist_classifier.tuning.study import JOURNAL, check_names, finished, open_storage, open_study, shown
from mnist_classifier.tuning.trials import recover

REPORT_DIR = Path("reports/tune")  # gitignored: results.md and the figures, per study


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--space", type=Path, default=TUNE_FILE, help="the search's settings (default: tune.yaml)"
    )
    parser.add_argument(
        "--trials", type=int, help="finished trials the study should reach (default: tune.yaml's)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="trials side by side on this machine (default 1)")
    parser.add_argument(
        "--storage", help="a database URL (postgresql://...) or journal file (default .tune/journal.log)"
    )
    parser.add_argument("--study", help="the study's name (default: tune.yaml's)")
    parser.add_argument(
        "--push", metavar="REMOTE", help="after each trial: dvc exp push --run-cache REMOTE <trial>"
    )
    args = parser.parse_args(argv)
    if args.trials is not None and args.trials < 1 or args.jobs < 1:
        parser.error("--trials and --jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    from mnist_classifier.tuning.report import write_report
    from mnist_classifier.tuning.search import Search

    args = parse_args(argv)
    settings = load_settings(args.space)
    if args.study:
        if not STUDY_NAME.fullmatch(args.study):
            raise PipelineError(
                f"--study {args.study!r}: a study's name is letters, digits, '.', '_' and '-'."
            )
        settings = replace(settings, study=args.study)
    trials = args.trials or settings.trials
    head = processes.run("git", "rev-parse", "HEAD")
    if not Path("dvc.yaml").is_file() or head.returncode:
        raise PipelineError("run this from the project's root, in a git repo with at least one commit.")
    baseline = head.stdout.strip()
    storage = open_storage(args.storage)
    study = open_study(settings, storage)
    for note in recover(study, args.push):
        print(f"tune: {note}", flush=True)
    check_names(settings, study, baseline)
    left = max(0, trials - len(finished(study)))
    where = shown(args.storage) if args.storage else str(JOURNAL)
    print(
        f"tune: study {settings.study!r} ({where}): {len(finished(study))} of {trials} trials finished; "
        f"{left} to go, {args.jobs} at a time",
        flush=True,
    )
    Search(settings, study, storage, trials, args.jobs, baseline, args.push).run()
    print(write_report(study, settings, REPORT_DIR / settings.study, pushed=args.push))


def cli() -> None:
    """The `mnist-tune` console script."""
    run_program("tune", main)


if __name__ == "__main__":
    cli()
