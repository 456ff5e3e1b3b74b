"""Time a 4-experiment learning-rate sweep: DVC's queue on 1 and 2 workers vs 4 plain runs.

Each round, interleaved: the 4 trainings as sequential plain-script runs, then the sweep as
`dvc exp run --queue` + `dvc queue start -j 1`, then `-j 2` with TRAIN_THREADS=1, each queue
in its own fresh clone (so neither restores the other's runs from the run cache) whose
fetch and preprocess ran beforehand, untimed. Appends its table to benchmarks/RESULTS.md.

    DATA_MIRROR=/path/to/data python benchmarks/sweep.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATES = ("0.0005", "0.001", "0.002", "0.004")


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Run cmd; its wall seconds, or exit with its output."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"sweep: `{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def queue_sweep(work: Path, name: str, jobs: int, env: dict[str, str]) -> float:
    """Seconds from queueing the 4 experiments to all 4 finished, in a fresh clone."""
    clone = work / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    sh(["dvc", "repro", "preprocess"], clone, env)  # untimed: the sweep starts from processed data
    start = time.perf_counter()
    sh(["dvc", "exp", "run", "--queue", "-S", f"learning_rate={','.join(RATES)}"], clone, env)
    sh(["dvc", "queue", "start", "-j", str(jobs)], clone, env)
    while True:
        status = subprocess.run(
            ["dvc", "queue", "status"], cwd=clone, env=env, capture_output=True, text=True
        ).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(1)
    wall = time.perf_counter() - start
    if status.count("Success") != len(RATES):
        sys.exit(f"sweep: not every experiment succeeded:\n{status}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("DATA_MIRROR"):
        sys.exit("sweep: set DATA_MIRROR to a folder holding mnist/.")
    env = dict(
        os.environ, DATA_MIRROR=str(Path(os.environ["DATA_MIRROR"]).resolve()), TF_CPP_MIN_LOG_LEVEL="2"
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    times: dict[str, list[float]] = {"plain": [], "j1": [], "j2": []}
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        for r in range(args.rounds):
            print(f"sweep: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            times["plain"].append(
                sum(
                    sh(
                        [sys.executable, str(ROOT / "benchmarks/plain_mnist.py"), "--learning-rate", rate],
                        ROOT,
                        env,
                    )
                    for rate in RATES
                )
            )
            times["j1"].append(queue_sweep(Path(tmp), f"j1-{r}", 1, env))
            times["j2"].append(queue_sweep(Path(tmp), f"j2-{r}", 2, dict(env, TRAIN_THREADS="1")))
    med = {k: statistics.median(v) for k, v in times.items()}

    def fmt(k: str) -> str:
        return f"{med[k]:.1f} s [{min(times[k]):.1f}–{max(times[k]):.1f}]"

    row = (
        f"| j. Sweep of 4 learning rates: `dvc queue start -j 2` (TRAIN_THREADS=1) / 4 plain runs "
        f"| ratio ≤ 1.0 | {med['j2'] / med['plain']:.2f} (n={args.rounds}); -j 2 {fmt('j2')}, "
        f"-j 1 {fmt('j1')} (ratio {med['j1'] / med['plain']:.2f}), 4 plain runs {fmt('plain')} "
        f"| {'met' if med['j2'] <= med['plain'] else '**not met**'} |"
    )
    print(row)
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
        f.write(
            f"\nQueue sweep ({args.rounds} interleaved rounds; each queue in a fresh clone, "
            f"processed data ready, untimed):\n\n| Row | Target | Measured: median [min–max] | Result |\n"
            f"|---|---|---|---|\n{row}\n"
        )


if __name__ == "__main__":
    main()
