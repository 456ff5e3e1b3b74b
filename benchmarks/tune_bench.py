"""Time a search of the MLP (`make tune`, 16 trials, 2 at a time) against the same 16 trainings
run one after another as plain scripts, and check what the search found on the test set.

In one run, interleaved: a search in a fresh clone, then the 16 trials' params as plain-script
runs (benchmarks/plain_mnist.py, every core, 10% held out for validation as the pipeline
does), then (unless --once) the same search again in a second fresh clone, which must propose
the same trials and score them the same (the sampler is seeded). Each clone's fetch and
preprocess run first, untimed. With --pruning, one more search with pruning on, to see what
it buys. Appends its tables to benchmarks/RESULTS.md and copies the search's figures to docs/.

    DATA_MIRROR=/path/to/data python benchmarks/tune_bench.py [--once] [--pruning]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIALS, JOBS = 16, 2


def sh(cmd: list[str], cwd: Path, env: dict[str, str], log: Path | None = None) -> float:
    """Run cmd; its wall seconds, or exit with its output."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        sys.exit(f"tune_bench: `{' '.join(cmd)}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def trials_of(clone: Path, study: str) -> list[dict]:
    """The finished trials of a clone's study: number, params, validation accuracy."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(clone / ".tune" / "journal.log")))
    found = optuna.load_study(study_name=study, storage=storage)
    return [
        {
            "number": t.number,
            "params": t.user_attrs["params"],
            "value": t.value,
            "state": t.state.name,
            "seconds": t.user_attrs.get("seconds", 0.0),
        }
        for t in found.get_trials(deepcopy=False)
    ]


def pruning_replay(clone: Path, study: str, trials: list[dict]) -> str:
    """What the median rule would have cut from this search, replayed on its real curves.

    Each finished trial's epoch curve (.tune/progress/) is reported, in trial order, to
    Optuna's own MedianPruner as `pruning: true` sets it (4 trials before it judges, 3 warm-up
    epochs); a pruned trial would have stopped at the epoch it was judged hopeless, saving that
    share of its measured time. Sequential replay: in the 2-worker search fewer trials would
    have finished when each was judged, so it prunes somewhat less than this.
    """
    import json

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    replay = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
    )
    pruned, saved, total = [], 0.0, 0.0
    for trial in sorted(trials, key=lambda t: t["number"]):
        lines = (clone / ".tune" / "progress" / f"{study}-{trial['number']}.jsonl").read_text().splitlines()
        curve = [json.loads(line)["val_accuracy"] for line in lines]
        total += trial["seconds"]
        asked = replay.ask()
        for epoch, value in enumerate(curve):
            asked.report(value, epoch)
            if asked.should_prune():
                replay.tell(asked, state=optuna.trial.TrialState.PRUNED)
                pruned.append(f"{trial['number']} at epoch {epoch + 1}/{len(curve)}")
                saved += trial["seconds"] * (1 - (epoch + 1) / len(curve))
                break
        else:
            replay.tell(asked, curve[-1])
    best = max(trials, key=lambda t: (t["value"], -t["number"]))["number"]
    kept = all(not p.startswith(f"{best} ") for p in pruned)
    return (
        f"{len(pruned)} of {len(trials)} trials pruned ({', '.join(pruned) or 'none'}), "
        f"{saved:.0f} of {total:.0f} trial-seconds saved ({saved / total:.0%}); "
        f"the best trial ({best}) {'kept' if kept else '**pruned**'}"
    )


def search(work: Path, name: str, env: dict[str, str], pruning: bool = False) -> tuple[float, Path]:
    """Seconds a 16-trial search takes in a fresh clone whose data is ready."""
    clone = work / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    sh(["dvc", "repro", "preprocess"], clone, env)
    cmd = [sys.executable, "-m", "mnist_classifier.tuning", "--trials", str(TRIALS), "--jobs", str(JOBS)]
    if pruning:
        tune = (clone / "tune.yaml").read_text().replace("pruning: false", "pruning: true")
        (clone / "tune.yaml").write_text(tune)
    print(f"tune_bench: {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    return sh(cmd, clone, env, log=work / f"{name}.log"), clone


def plain_runs(trials: list[dict], env: dict[str, str]) -> float:
    """Seconds for the trials' params trained one after another by the plain script."""
    total = 0.0
    for trial in trials:
        p = trial["params"]
        cmd = [sys.executable, str(ROOT / "benchmarks" / "plain_mnist.py"), "--validation-split", "0.1"]
        cmd += ["--epochs", str(p["epochs"]), "--learning-rate", repr(p["learning_rate"])]
        cmd += ["--batch-size", str(p["batch_size"]), "--schedule", p["lr_schedule"]]
        cmd += ["--optimizer", p["optimizer"], "--activation", p["mlp.activation"]]
        cmd += ["--dropout", repr(p["mlp.dropout"]), "--hidden", ",".join(map(str, p["mlp.hidden_units"]))]
        print(f"tune_bench: plain run of trial {trial['number']}", file=sys.stderr, flush=True)
        total += sh(cmd, ROOT, env)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="one search, not two around the plain runs")
    parser.add_argument("--pruning", action="store_true", help="one more search with pruning on")
    args = parser.parse_args()
    if not os.environ.get("DATA_MIRROR"):
        sys.exit("tune_bench: set DATA_MIRROR to a folder holding mnist/.")
    env = dict(
        os.environ, DATA_MIRROR=str(Path(os.environ["DATA_MIRROR"]).resolve()), TF_CPP_MIN_LOG_LEVEL="2"
    )
    env.pop("TRAIN_THREADS", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    study = "mlp-search"
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        work = Path(tmp)
        wall, first = search(work, "search-1", env)
        walls.append(wall)
        trials = [t for t in trials_of(first, study) if t["state"] == "COMPLETE"]
        replayed = pruning_replay(first, study, trials)
        plain = plain_runs(trials, env)
        same = None
        if not args.once:
            wall, second = search(work, "search-2", env)
            walls.append(wall)
            again = [t for t in trials_of(second, study) if t["state"] == "COMPLETE"]
            same = [(t["params"], t["value"]) for t in again] == [(t["params"], t["value"]) for t in trials]
        # One heading level down: the search's report sits inside this dated section.
        results = (
            (first / "reports" / "tune" / study / "results.md").read_text().replace("## Study", "#### Study")
        )
        for figure in ("history.png", "importance.png"):
            shutil.copy(first / "reports" / "tune" / study / figure, ROOT / "docs" / f"tune-{figure}")
        pruned_row = ""
        if args.pruning:
            pruned_wall, pruned = search(work, "search-pruned", env, pruning=True)
            pruned_results = (
                (pruned / "reports" / "tune" / study / "results.md")
                .read_text()
                .replace("## Study", "#### Study")
            )
            states = [t["state"] for t in trials_of(pruned, study)]
            pruned_row = (
                f"| n. The same search with `pruning: true` (median rule, 3 warm-up epochs) | – | "
                f"{pruned_wall:.0f} s, {states.count('PRUNED')} of {len(states)} trials pruned "
                f"(without: {walls[0]:.0f} s) | – |\n"
            )
    med = statistics.median(walls)
    ratio = med / plain
    spread = f" [{min(walls):.0f}–{max(walls):.0f}]" if len(walls) > 1 else ""
    best = max(trials, key=lambda t: (t["value"], -t["number"]))
    table = (
        "| Row | Target | Measured | Result |\n|---|---|---|---|\n"
        f"| k. Search of {TRIALS} MLP trials, `make tune JOBS={JOBS}` / the same {TRIALS} trainings as plain "
        f"runs | ratio ≤ 1.0 | {ratio:.2f}; search {med:.0f} s{spread} (n={len(walls)}), "
        f"plain runs {plain:.0f} s | {'met' if ratio <= 1.0 else '**not met**'} |\n"
        + (
            f"| l. The second search proposed the same trials with the same scores | same | "
            f"{'same' if same else '**different**'} | {'met' if same else '**not met**'} |\n"
            if same is not None
            else ""
        )
        + f"| m. Pruning, replayed on this search's curves (median rule) | – | {replayed} | – |\n"
        + pruned_row
    )
    stamp = datetime.date.today().isoformat()
    text = (
        f"\n### {stamp}: `make tune`, {TRIALS} MLP trials on real MNIST ({platform.machine()}, "
        f"{os.cpu_count()} cores; `python benchmarks/tune_bench.py`)\n\n"
        f"Best on validation: trial {best['number']} (val {best['value']:.4f}); its test accuracy is in "
        f"the search's table below.\n\n{table}\n{results}"
        + (f"\nWith pruning:\n\n{pruned_results}" if args.pruning else "")
    )
    print(text)
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
