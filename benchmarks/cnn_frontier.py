"""The CNN's accuracy against its wall time, beside the peer: Keras' own `mnist_convnet` example.

Each round, interleaved: the peer as a plain script (benchmarks/keras_convnet.py, 15 epochs),
then `dvc exp run -S model=cnn` at each setting (the default first; others as extra `-S`
overrides, e.g. "epochs=6" or "epochs=10 cnn.filters=[16,32]"), in one clone of the project
whose fetch and preprocess ran first, untimed. The run cache is emptied before each run, so
every one trains. Wall time is the whole command, as a user waits for it: the peer's
imports, loading, training and test; DVC, the train, evaluate and plot stages for ours.

It writes a Markdown table and a PNG (test accuracy against wall time: the peer one point, the
project's settings a curve) and appends both to benchmarks/RESULTS.md.

    DATA_MIRROR=/path/to/data python benchmarks/cnn_frontier.py [--rounds 2]
        [--settings "" "epochs=6" "epochs=10"] [--seeds 1 2 3]

--seeds adds runs of the default at those seeds (after the rounds), for its mean and spread.
The test suite runs it on a tiny project with `--project DIR --dataset tiny --peer-epochs 1`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
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
    """One point of the figure: its runs' wall seconds and test accuracies."""

    label: str
    walls: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)

    def row(self) -> list[str]:
        wall, acc = statistics.median(self.walls), statistics.mean(self.accuracies)
        wall_span = f" [{min(self.walls):.0f}–{max(self.walls):.0f}]" if len(self.walls) > 1 else ""
        acc_span = (
            f" [{min(self.accuracies):.4f}–{max(self.accuracies):.4f}]" if len(self.accuracies) > 1 else ""
        )
        return [self.label, f"{wall:.0f} s{wall_span}", f"{acc:.4f}{acc_span}", str(len(self.walls))]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run cmd; its wall seconds and output, or exit with its output."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"cnn_frontier: `{' '.join(cmd)}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def peer(env: dict[str, str], dataset: str, epochs: int) -> tuple[float, float]:
    """The peer's wall seconds and test accuracy."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "keras_convnet.py"), "--dataset", dataset]
    wall, out = run([*cmd, "--epochs", str(epochs)], ROOT, env)
    found = re.search(r"test accuracy: ([0-9.]+)", out)
    if not found:
        sys.exit(f"cnn_frontier: the peer printed no test accuracy:\n{out[-2000:]}")
    return wall, float(found.group(1))


def ours(project: Path, env: dict[str, str], setting: str) -> tuple[float, float]:
    """Wall seconds and test accuracy of `dvc exp run -S model=cnn` with the setting's overrides."""
    shutil.rmtree(project / ".dvc" / "cache" / "runs", ignore_errors=True)  # train, don't restore
    cmd = [sys.executable, "-m", "dvc", "exp", "run", "-S", "model=cnn"]
    for override in setting.split():
        cmd += ["-S", override]
    wall, out = run(cmd, project, env)
    if "Running stage 'train'" not in out:
        sys.exit(f"cnn_frontier: `{' '.join(cmd[2:])}` did not train (restored?):\n{out[-2000:]}")
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    return wall, float(metrics["test"]["accuracy"])


def figure(peer_series: Series, settings: list[Series], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = sorted(
        ((statistics.median(s.walls), statistics.mean(s.accuracies), s.label) for s in settings),
        key=lambda p: p[0],
    )
    ax.plot(
        [p[0] for p in points], [p[1] for p in points], "o-", color="tab:blue", label="this project's CNN"
    )
    for wall, acc, label in points:
        ax.annotate(label, (wall, acc), textcoords="offset points", xytext=(5, -12), fontsize=8)
    wall, acc = statistics.median(peer_series.walls), statistics.mean(peer_series.accuracies)
    ax.plot([wall], [acc], "*", markersize=14, color="tab:red", label="Keras' mnist_convnet (15 epochs)")
    ax.axvline(wall, color="tab:red", linewidth=0.8, linestyle=":")
    ax.set_xlabel("wall time of the whole command (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Accuracy against time ({platform.machine()}, {os.cpu_count()} cores)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    tmp.replace(path)


def table(series: list[Series]) -> str:
    lines = ["| run | wall time (median) | test accuracy (mean) | n |", "|---|---|---|---|"]
    return "\n".join(lines + ["| " + " | ".join(s.row()) + " |" for s in series])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--settings",
        nargs="*",
        default=["", "epochs=6", "epochs=12"],
        help='extra -S overrides per setting ("" is the default CNN)',
    )
    parser.add_argument(
        "--seeds", nargs="*", type=int, default=[], help="more runs of the default, at these seeds"
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

    peer_series = Series(f"Keras' `mnist_convnet`, {args.peer_epochs} epochs (peer)")
    settings = [
        Series(f"`-S model=cnn {s}`".replace(" `", "`") if s else "`-S model=cnn` (default)")
        for s in args.settings
    ]
    with tempfile.TemporaryDirectory(prefix="cnn-frontier-") as tmp:
        project = args.project
        if project is None:
            project = Path(tmp) / "project"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(project)], check=True)
        run([sys.executable, "-m", "dvc", "repro", "preprocess"], project, env)
        for r in range(args.rounds):
            print(f"cnn_frontier: round {r + 1}: the peer", file=sys.stderr, flush=True)
            wall, acc = peer(env, args.dataset, args.peer_epochs)
            peer_series.walls.append(wall), peer_series.accuracies.append(acc)
            for setting, series in zip(args.settings, settings):
                print(f"cnn_frontier: round {r + 1}: {series.label}", file=sys.stderr, flush=True)
                wall, acc = ours(project, env, setting)
                series.walls.append(wall), series.accuracies.append(acc)
        seeded = Series(f"`-S model=cnn` (default), seeds {', '.join(map(str, args.seeds))}")
        for seed in args.seeds:
            print(f"cnn_frontier: the default at seed {seed}", file=sys.stderr, flush=True)
            wall, acc = ours(project, env, f"seed={seed}")
            seeded.walls.append(wall), seeded.accuracies.append(acc)

    figure(peer_series, settings, args.figure)
    rows = [peer_series, *settings] + ([seeded] if args.seeds else [])
    default = settings[args.settings.index("")] if "" in args.settings else None
    ratio = ""
    if default is not None:
        peer_wall, peer_acc = statistics.median(peer_series.walls), statistics.mean(peer_series.accuracies)
        wall, acc = statistics.median(default.walls), statistics.mean(default.accuracies)
        ratio = (
            f"\nThe default CNN / the peer, wall time: **{wall / peer_wall:.2f}** (target ≤ 1.0); "
            f"test accuracy {acc:.4f} against {peer_acc:.4f}.\n"
        )
    try:
        shown = args.figure.resolve().relative_to(args.results.resolve().parent)
    except ValueError:
        shown = args.figure
    text = (
        f"\n### {datetime.date.today().isoformat()}: the CNN against Keras' `mnist_convnet` "
        f"({platform.machine()}, {os.cpu_count()} cores; `python benchmarks/cnn_frontier.py "
        f"--rounds {args.rounds}`)\n\n{table(rows)}\n{ratio}\n![accuracy against wall time]({shown})\n"
    )
    print(text)
    with open(args.results, "a", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
