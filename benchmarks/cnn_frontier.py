"""The CNN's accuracy against its time, beside the peer: Keras' own `mnist_convnet` example.

One round per seed, interleaved: the peer as a plain script (benchmarks/keras_convnet.py, 15
epochs), then `dvc exp run -S model=cnn -S seed=S` (the default CNN), in one clone of the
project whose fetch and preprocess ran first, untimed. Then each extra setting once (more
`-S` overrides, e.g. "epochs=6"), for the curve. The run cache is emptied before each run,
so every one trains. Times are the whole command, as a user waits for it: the peer's
imports, loading, training and test; DVC and the train, evaluate and plot stages for ours.
Both the wall time and the CPU time (user + system, of every process the command started).

With --shift-average, each default run is followed by `-S evaluate.shift_average=true` with
the run cache kept: only evaluate reruns, on the same model, so its accuracy and extra time
are what test-time shift averaging gives and costs.

It writes a Markdown table and a PNG (test accuracy against time as a multiple of the peer's:
the peer, the default, the settings, earlier defaults given by --reference, and the Pareto
front of them all) and appends both to benchmarks/RESULTS.md.

    DATA_MIRROR=/path/to/data python benchmarks/cnn_frontier.py [--seeds 42 1 2]
        [--settings "epochs=6"] [--shift-average] [--reference "old CNN=7.94,0.9964"]

The test suite runs it on a tiny project with `--project DIR --dataset tiny --peer-epochs 1`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Series:
    """One point of the figure: its runs' wall and CPU seconds and test accuracies."""

    label: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    def add(self, timed: tuple[float, float, float]) -> None:
        wall, cpu, accuracy = timed
        self.walls.append(wall), self.cpus.append(cpu), self.accuracies.append(accuracy)

    def point(self, peer_wall: float) -> tuple[float, float]:
        """(median wall time / the peer's, mean test accuracy)."""
        return statistics.median(self.walls) / peer_wall, statistics.mean(self.accuracies)

    def row(self) -> list[str]:
        def spread(values: list[float], fmt: str) -> str:
            middle = statistics.mean(values) if fmt == ".4f" else statistics.median(values)
            span = f" [{min(values):{fmt}}–{max(values):{fmt}}]" if len(values) > 1 else ""
            return f"{middle:{fmt}}{span}"

        return [
            self.label,
            spread(self.walls, ".0f") + " s",
            spread(self.cpus, ".0f") + " s",
            spread(self.accuracies, ".4f"),
            str(len(self.walls)),
        ]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run cmd; its wall and CPU seconds (user + system of it and its children) and output,
    or exit with its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        sys.exit(f"cnn_frontier: `{' '.join(cmd)}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout + proc.stderr


def peer(env: dict[str, str], dataset: str, epochs: int) -> tuple[float, float, float]:
    """The peer's wall and CPU seconds and test accuracy."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "keras_convnet.py"), "--dataset", dataset]
    wall, cpu, out = run([*cmd, "--epochs", str(epochs)], ROOT, env)
    found = re.search(r"test accuracy: ([0-9.]+)", out)
    if not found:
        sys.exit(f"cnn_frontier: the peer printed no test accuracy:\n{out[-2000:]}")
    return wall, cpu, float(found.group(1))


def ours(project: Path, env: dict[str, str], setting: str, train: bool = True) -> tuple[float, float, float]:
    """Wall and CPU seconds and test accuracy of `dvc exp run -S model=cnn` with the setting's
    overrides; with train=False the run cache is kept and train must not rerun."""
    if train:
        shutil.rmtree(project / ".dvc" / "cache" / "runs", ignore_errors=True)  # train, don't restore
    cmd = [sys.executable, "-m", "dvc", "exp", "run", "-S", "model=cnn"]
    for override in setting.split():
        cmd += ["-S", override]
    wall, cpu, out = run(cmd, project, env)
    if ("Running stage 'train'" in out) != train:
        sys.exit(
            f"cnn_frontier: `{' '.join(cmd[2:])}` {'did not train' if train else 'trained'}:\n{out[-2000:]}"
        )
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    return wall, cpu, float(metrics["test"]["accuracy"])


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both time (lower) and accuracy (higher), by time."""
    front: list[tuple[float, float]] = []
    for time_, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((time_, acc))
    return front


def figure(
    peer_series: Series,
    default: Series,
    settings: list[Series],
    references: dict[str, tuple[float, float]],
    path: Path,
    averaged: Series | None = None,
) -> None:
    """Accuracy against time as a multiple of the peer's: the peer (1.0), this CNN's settings
    (a curve), the default then shift-averaged (its extra evaluate run added to the default's
    time), earlier points, the target's corner and the Pareto front of every point."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from mnist_classifier.figures import pyplot

    plt = pyplot()  # the project's one way to a file-only pyplot

    peer_wall = statistics.median(peer_series.walls)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ours_points = sorted([s.point(peer_wall) + (s.label,) for s in [default, *settings]])
    ax.plot(
        [p[0] for p in ours_points], [p[1] for p in ours_points], "o-", color="tab:blue", label="this CNN"
    )
    for ratio, acc, label in ours_points:
        ax.annotate(
            label.replace("`", ""), (ratio, acc), textcoords="offset points", xytext=(5, -12), fontsize=7
        )
    extra = dict(references)
    if averaged is not None and averaged.walls:
        ratio = (statistics.median(default.walls) + statistics.median(averaged.walls)) / peer_wall
        extra["the default, then shift-averaged"] = (ratio, statistics.mean(averaged.accuracies))
    for label, (ratio, acc) in extra.items():
        ax.plot([ratio], [acc], "s", color="tab:gray")
        ax.annotate(label, (ratio, acc), textcoords="offset points", xytext=(-6, 6), fontsize=7, ha="right")
    peer_point = peer_series.point(peer_wall)
    ax.plot(*peer_point, "*", markersize=14, color="tab:red", label="Keras' mnist_convnet (15 epochs)")
    front = pareto([p[:2] for p in ours_points] + list(extra.values()) + [peer_point])
    ax.step(
        [p[0] for p in front],
        [p[1] for p in front],
        where="post",
        color="tab:green",
        alpha=0.6,
        label="Pareto front",
    )
    left = min(p[0] for p in [*front, peer_point]) * 0.8
    top = max(p[1] for p in [*front, peer_point]) + 0.0004
    ax.fill_between([left, 1.0], 0.996, top, color="tab:green", alpha=0.08, label="target: ≥ 0.996 in ≤ 1.0x")
    ax.set_xscale("log")
    ax.set_xlim(left, max(p[0] for p in [*front, peer_point]) * 1.25)
    ax.set_ylim(top=top)
    ax.xaxis.set_major_locator(FixedLocator([0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.set_xlabel("wall time of the whole command, as a multiple of the peer's (log scale)")
    ax.set_ylabel("test accuracy (mean over runs)")
    ax.set_title(f"Accuracy against time ({platform.machine()}, {os.cpu_count()} cores)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    tmp.replace(path)


def table(series: list[Series]) -> str:
    lines = [
        "| run | wall time (median) | CPU time (median) | test accuracy (mean) | n |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(lines + ["| " + " | ".join(s.row()) + " |" for s in series])


def reference(text: str) -> tuple[str, tuple[float, float]]:
    """`LABEL=RATIO,ACCURACY` (an earlier run's time as a multiple of its peer's, and its accuracy)."""
    label, _, numbers = text.rpartition("=")
    ratio, accuracy = (float(n) for n in numbers.split(","))
    return label, (ratio, accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2], help="one round per seed")
    parser.add_argument(
        "--settings",
        nargs="*",
        default=["epochs=6"],
        help="extra -S overrides, each run once after the rounds",
    )
    parser.add_argument(
        "--shift-average", action="store_true", help="score each default run shift-averaged too"
    )
    parser.add_argument(
        "--reference", nargs="*", type=reference, default=[], help="earlier points: LABEL=RATIO,ACCURACY"
    )
    parser.add_argument("--peer-epochs", type=int, default=15)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument(
        "--project", type=Path, help="a committed copy of the project (default: a fresh clone)"
    )
    parser.add_argument("--figure", type=Path, default=ROOT / "benchmarks" / "cnn_frontier.png")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    if not os.environ.get("DATA_MIRROR"):
        sys.exit(f"cnn_frontier: set DATA_MIRROR to a folder holding {args.dataset}/.")
    env = dict(
        os.environ, DATA_MIRROR=str(Path(os.environ["DATA_MIRROR"]).resolve()), TF_CPP_MIN_LOG_LEVEL="2"
    )
    env.pop("TRAIN_THREADS", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])

    seeds = ", ".join(map(str, args.seeds))
    peer_series = Series(f"Keras' `mnist_convnet`, {args.peer_epochs} epochs (peer)")
    default = Series(f"`-S model=cnn` (default), seeds {seeds}")
    averaged = Series("the same models, `-S evaluate.shift_average=true` (evaluate and plot rerun)")
    settings = [Series(f"`-S model=cnn {s}`, seed {args.seeds[0]}") for s in args.settings]
    with tempfile.TemporaryDirectory(prefix="cnn-frontier-") as tmp:
        project = args.project
        if project is None:
            project = Path(tmp) / "project"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(project)], check=True)
        run([sys.executable, "-m", "dvc", "repro", "preprocess"], project, env)
        for seed in args.seeds:
            print(f"cnn_frontier: seed {seed}: the peer", file=sys.stderr, flush=True)
            peer_series.add(peer(env, args.dataset, args.peer_epochs))
            print(f"cnn_frontier: seed {seed}: the default CNN", file=sys.stderr, flush=True)
            default.add(ours(project, env, f"seed={seed}"))
            if args.shift_average:
                averaged.add(ours(project, env, f"seed={seed} evaluate.shift_average=true", train=False))
        for setting, series in zip(args.settings, settings):
            print(f"cnn_frontier: {series.label}", file=sys.stderr, flush=True)
            series.add(ours(project, env, f"seed={args.seeds[0]} {setting}"))

    references = dict(args.reference)
    figure(peer_series, default, settings, references, args.figure, averaged if args.shift_average else None)
    rows = [peer_series, default] + ([averaged] if args.shift_average else []) + settings
    walls = [ours / theirs for ours, theirs in zip(default.walls, peer_series.walls)]
    cpus = [ours / theirs for ours, theirs in zip(default.cpus, peer_series.cpus)]
    summary = (
        f"\nThe default CNN / the peer, round by round: wall time **{statistics.median(walls):.2f}** "
        f"[{min(walls):.2f}–{max(walls):.2f}], CPU time {statistics.median(cpus):.2f} "
        f"[{min(cpus):.2f}–{max(cpus):.2f}] (target ≤ 1.0). Test accuracy: "
        f"{', '.join(f'{a:.4f}' for a in default.accuracies)} (seeds {seeds}), mean "
        f"**{statistics.mean(default.accuracies):.5f}** (target ≥ 0.996), against the peer's "
        f"{statistics.mean(peer_series.accuracies):.4f}.\n"
    )
    if args.shift_average:
        extra = statistics.median(averaged.walls)
        summary += (
            f"Shift-averaged: {', '.join(f'{a:.4f}' for a in averaged.accuracies)}, mean "
            f"**{statistics.mean(averaged.accuracies):.5f}**; evaluate and plot rerun in {extra:.0f} s.\n"
        )
    try:
        shown = args.figure.resolve().relative_to(args.results.resolve().parent)
    except ValueError:
        shown = args.figure
    text = (
        f"\n### {datetime.date.today().isoformat()}: the CNN against Keras' `mnist_convnet` "
        f"({platform.machine()}, {os.cpu_count()} cores; `python benchmarks/cnn_frontier.py "
        f"{shlex.join(sys.argv[1:])}`)\n\n{table(rows)}\n{summary}\n![accuracy against time]({shown})\n"
    )
    print(text)
    with open(args.results, "a", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
