"""Time the DVC pipeline side by side with the plain script (benchmarks/plain_mnist.py).

Each pair clones this repository's HEAD into a fresh temp folder (no outputs, empty DVC
cache and run cache), then runs, alternating pipeline (A) and plain script (B):
cold `dvc repro` / plain script, `dvc exp run -S epochs=30` / plain `--epochs 30`, then
`dvc exp run -S epochs=20` (a run-cache hit) and `dvc repro` with nothing changed; then a
cold `dvc repro` with the MLP on its other backend, and the plain script on the pipeline's
backend (the plain script's own is Keras' default, TensorFlow). Each clone has its own JAX
compilation cache, empty at its cold run.
Every `python` a stage runs goes through /usr/bin/time (a PATH shim) for its wall time
and peak RSS; output lines are timestamped as they arrive, which gives epoch times.
Writes the Markdown report to benchmarks/RESULTS.md and prints it.

    DATA_MIRROR=/path/to/data python benchmarks/bench.py [--pairs 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import yaml

from mnist_classifier.config import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ROOT / "benchmarks" / "plain_mnist.py"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
STAGES = ("fetch", "preprocess", "train", "evaluate", "plot")
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
EPOCH_END = re.compile(r"^\d+/\d+ - .*/step")  # Keras verbose=2, printed as an epoch ends
CACHED = "Stage 'train' is cached - skipping run"
NOOP_REPEATS = 3


@dataclass
class Run:
    """One timed command: wall seconds, timestamped output, and the shim's per-`python` log."""

    wall: float
    lines: list[tuple[float, str]]
    procs: list[tuple[str, float, float]] = field(default_factory=list)  # name, wall s, RSS MB

    def text(self) -> str:
        """The output, as one string."""
        return "\n".join(line for _, line in self.lines)

    def stage(self, name: str) -> tuple[float, float]:
        """(wall s, peak RSS MB) of the `python -m stages.<name>` this run started."""
        return next((w, m) for n, w, m in self.procs if n == name)

    def epoch_times(self) -> list[float]:
        """Seconds between consecutive epoch ends: every epoch but the first."""
        ends = [t for t, line in self.lines if EPOCH_END.match(line)]
        return [b - a for a, b in zip(ends, ends[1:])]


def fail(message: str) -> None:
    """Stop with one clear message."""
    sys.exit(f"bench: {message}")


def make_env(work: Path) -> dict[str, str]:
    """Environment for every command: the /usr/bin/time shim first on PATH, then this venv."""
    timer = shutil.which("time", path="/usr/bin:/bin")
    if not timer:
        fail("/usr/bin/time (GNU time) is needed for per-stage RSS; install the `time` package.")
    shim = work / "shim"
    shim.mkdir()
    (shim / "python").write_text(  # %C is the command line, %M peak RSS in KB
        f'#!/bin/sh\nexec {timer} -a -o "$BENCH_LOG" -f "%e %M %C" {shlex.quote(sys.executable)} "$@"\n'
    )
    (shim / "python").chmod(0o755)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PATH"] = os.pathsep.join([str(shim), str(Path(sys.executable).parent), env["PATH"]])
    if not shutil.which("dvc", path=env["PATH"]):
        fail("`dvc` is not on PATH; run from the project venv (`make bench`).")
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> Run:
    """Run cmd, timestamping each output line as it arrives; exit with its output on failure."""
    fd, name = tempfile.mkstemp(prefix="bench-log-")
    os.close(fd)
    log = Path(name)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env, BENCH_LOG=str(log)),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = [(time.perf_counter() - start, line.rstrip("\n")) for line in proc.stdout]
    result = Run(time.perf_counter() - start, lines)
    if proc.wait():
        fail(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}) in {cwd}:\n"
            + "\n".join(line for _, line in lines[-30:])
        )
    for entry in log.read_text().splitlines():
        if m := re.match(r"^([\d.]+) (\d+) .*?(?:-m stages\.(\w+)|(plain_mnist))", entry):
            result.procs.append((m[3] or m[4], float(m[1]), int(m[2]) / 1024))
    log.unlink()
    return result


def check(condition: bool, what: str, run_: Run) -> None:
    """Stop, showing run_'s output, when a run did not do what the row assumes."""
    if not condition:
        fail(f"{what}; the output was:\n{run_.text()[-3000:]}")


def du_mb(path: Path) -> float:
    """Disk usage of path in MB, as `du` counts it."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 matmul rate of this CPU through numpy's BLAS, in GFLOP/s (2 n^3 flops)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b  # warm-up: threads, page faults
    return 2 * n**3 / min(timeit.repeat(lambda: a @ b, number=1, repeat=repeats)) / 1e9


def pair(work: Path, env: dict[str, str], i: int) -> dict:
    """One fresh clone; A/B cold and iterate, then revisit and no-op in the same clone."""
    clone = work / f"clone{i}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # Each clone starts with an empty JAX compilation cache (the user's stays out of it): the
    # cold run compiles every step; the later runs in the clone find them, as a user's would.
    denv = dict(env, JAX_COMPILATION_CACHE_DIR=str(work / f"jax-cache{i}"))
    r: dict = {"cold_dvc": run(["dvc", "repro"], clone, denv)}
    out = r["cold_dvc"].text()
    check(
        all(f"Running stage '{s}'" in out for s in STAGES) and "is cached" not in out,
        "the cold `dvc repro` did not run every stage",
        r["cold_dvc"],
    )
    r["accuracy"] = json.loads((clone / "reports/metrics.json").read_text())["test"]["accuracy"]
    r["disk"] = {p: du_mb(clone / p) for p in ("data/raw", "data/processed", "models", ".dvc/cache")}
    with np.load(clone / "data/processed/train.npz") as t, np.load(clone / "data/processed/val.npz") as v:
        r["n_train"], r["n_val"] = len(t["y"]), len(v["y"])
    r["params"] = yaml.safe_load((clone / "params.yaml").read_text())
    r["cold_plain"] = run(["python", str(PLAIN)], ROOT, env)
    r["plain_accuracy"] = float(re.findall(r"test accuracy: ([\d.]+)", r["cold_plain"].text())[-1])
    r["iter_dvc"] = run(["dvc", "exp", "run", "-S", "epochs=30"], clone, denv)
    check("Running stage 'train'" in r["iter_dvc"].text(), "epochs=30 did not train", r["iter_dvc"])
    r["iter_plain"] = run(["python", str(PLAIN), "--epochs", "30"], ROOT, env)
    r["revisit"] = run(["dvc", "exp", "run", "-S", "epochs=20"], clone, denv)
    r["revisit_cached"] = CACHED in r["revisit"].text() and not r["revisit"].procs
    r["noop"] = [run(["dvc", "repro"], clone, denv) for _ in range(NOOP_REPEATS)]
    for n in r["noop"]:
        check("Data and pipelines are up to date." in n.text(), "`dvc repro` was not a no-op", n)
    shutil.rmtree(clone)
    r["other_dvc"], r["other_accuracy"] = cold_other_backend(
        work / f"other{i}",
        dict(env, JAX_COMPILATION_CACHE_DIR=str(work / f"jax-cache-other{i}")),
        r["params"]["backend"],
    )
    r["plain_same"] = run(["python", str(PLAIN)], ROOT, dict(env, KERAS_BACKEND=r["params"]["backend"]))
    return r


def other_backend(default: str) -> str:
    """The training backend (config.BACKENDS) that the MLP does not use by default."""
    return next(b for b in BACKENDS if b != default)


def cold_other_backend(clone: Path, env: dict[str, str], default: str) -> tuple[Run, float]:
    """The MLP on the backend it does not train on by default: a cold `dvc repro` in its own
    fresh clone."""
    other = other_backend(default)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    params = clone / "params.yaml"
    params.write_text(re.sub(r"(?m)^backend: \w+", f"backend: {other}", params.read_text()))
    result = run(["dvc", "repro"], clone, env)
    check(
        all(f"Running stage '{s}'" in result.text() for s in STAGES),
        f"the cold `dvc repro` on {other} did not run every stage",
        result,
    )
    accuracy = json.loads((clone / "reports/metrics.json").read_text())["test"]["accuracy"]
    shutil.rmtree(clone)
    return result, accuracy


def spread(xs: list[float], fmt: str = ".2f", n: bool = False) -> str:
    """Median [min–max] of xs, with their count when n."""
    count = f" (n={len(xs)})" if n else ""
    return f"{statistics.median(xs):{fmt}} [{min(xs):{fmt}}–{max(xs):{fmt}}]{count}"


def verdict(ok: bool) -> str:
    """The Result column."""
    return "met" if ok else "**not met**"


def package(*names: str) -> str:
    """Installed version of the first of names that is installed."""
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            pass
    return "not installed"


def header(pairs: int, quick: bool, load: float) -> list[str]:
    """Machine, versions, date, commit and load: what a reader needs to trust the numbers."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = (
        " (working tree has uncommitted changes: not benchmarked)"
        if git("status", "--porcelain", "--untracked-files=no")
        else ""
    )
    return [
        "# Benchmark: DVC pipeline vs plain Keras script" + (" (quick smoke run)" if quick else ""),
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; "
        f"commit {git('rev-parse', '--short', 'HEAD')}{dirty}",
        f"- CPU: {cpu}, {os.cpu_count()} cores; load average at start {load:.2f}",
        f"- Python {platform.python_version()}, TensorFlow {package('tensorflow-cpu', 'tensorflow')}, "
        f"Keras {package('keras')}, JAX {package('jax')}, DVC {package('dvc')}, numpy {package('numpy')}",
        f"- {pairs} interleaved pair(s) (pipeline, plain, pipeline, plain, ...), each in a fresh "
        "`git clone` of HEAD with no outputs and an empty DVC cache; clone time not counted.",
        "",
    ]


def target_rows(results: list[dict], gflops: float) -> tuple[list[tuple[str, ...]], str]:
    """Rows a-g of the target table (name, target, measured, result), and a note on the floor."""

    def ratio(k: str) -> list[float]:
        return [r[f"{k}_dvc"].wall / r[f"{k}_plain"].wall for r in results]

    def walls(k: str) -> list[float]:
        return [r[k].wall for r in results]

    cold, it, first = ratio("cold"), ratio("iter"), results[0]
    revisit, noop = walls("revisit"), [n.wall for r in results for n in r["noop"]]
    units = [784, *first["params"]["mlp"]["hidden_units"], 10]
    n_params = sum(a * b + b for a, b in zip(units, units[1:]))
    flops = 6 * n_params * first["n_train"] + 2 * n_params * first["n_val"]
    floor = flops / (gflops * 1e9)
    epoch = [statistics.median(r["cold_dvc"].epoch_times()) for r in results]
    plain_epoch = [statistics.median(r["cold_plain"].epoch_times()) for r in results]
    rss = {s: max(r["cold_dvc"].stage(s)[1] for r in results) for s in STAGES}
    acc = [r["accuracy"] for r in results]
    backend = first["params"]["backend"]
    other = other_backend(backend)
    other_ratio = [r["other_dvc"].wall / r["cold_plain"].wall for r in results]
    other_epoch = [statistics.median(r["other_dvc"].epoch_times()) for r in results]
    same = [r["cold_dvc"].wall / r["plain_same"].wall for r in results]
    plain_acc = [r["plain_accuracy"] for r in results]
    cached = sum(r["revisit_cached"] for r in results)
    disk = ", ".join(f"`{p}` {first['disk'][p]:.0f} MB" for p in first["disk"])
    rows = [
        (
            "a. Cold: `dvc repro` in a fresh clone / plain script",
            "ratio ≤ 1.0",
            f"{spread(cold, n=True)}; dvc {spread(walls('cold_dvc'), '.1f')} s, "
            f"plain {spread(walls('cold_plain'), '.1f')} s; the MLP trains on {backend}, "
            "the plain script on Keras' default backend (TensorFlow)",
            verdict(statistics.median(cold) <= 1.0),
        ),
        (
            f"a2. The same, against the plain script on {backend} too: what the stages cost",
            "— (no target)",
            f"{spread(same, n=True)}; plain script on {backend} {spread(walls('plain_same'), '.1f')} s",
            "—",
        ),
        (
            "b. Iterate: `dvc exp run -S epochs=30` / plain `--epochs 30`",
            "ratio ≤ 1.1",
            f"{spread(it, n=True)}; dvc {spread(walls('iter_dvc'), '.1f')} s, "
            f"plain {spread(walls('iter_plain'), '.1f')} s",
            verdict(statistics.median(it) <= 1.1),
        ),
        (
            "c. Revisit: `dvc exp run -S epochs=20` after epochs=30",
            "≤ 3 s",
            f'{spread(revisit, n=True)} s; train restored from run cache ("{CACHED}", no stage ran) '
            f"in {cached}/{len(results)}",
            verdict(statistics.median(revisit) <= 3 and cached == len(results)),
        ),
        (
            "d. Nothing changed: `dvc repro`",
            "≤ 1.0 s",
            f"{spread(noop, n=True)} s",
            verdict(statistics.median(noop) <= 1.0),
        ),
        (
            "e. Training speed: train stage steady-state epoch",
            "≥ 60% of floor",
            f"floor {floor:.3f} s/epoch, measured {spread(epoch, '.3f', n=True)} s/epoch, "
            f"{100 * floor / statistics.median(epoch):.0f}% of floor "
            f"(plain script: {spread(plain_epoch, '.3f')} s/epoch)",
            verdict(floor / statistics.median(epoch) >= 0.60),
        ),
        (
            "f. Memory: peak RSS of each stage (max over runs)",
            "≤ 1.5 GB each",
            ", ".join(f"{s} {m:.0f} MB" for s, m in rss.items()),
            verdict(max(rss.values()) <= 1536),
        ),
        ("f. Disk after a cold repro", "—", disk, "—"),
        (
            "g. Test accuracy of the cold runs",
            "≥ 0.975",
            f"pipeline {spread(acc, '.4f')}; plain script {spread(plain_acc, '.4f')}",
            verdict(min(acc) >= 0.975),
        ),
        (
            f"h. Option `backend: {other}`: cold `dvc repro` / plain script (TensorFlow)",
            "— (no target)",
            f"{spread(other_ratio, n=True)}; dvc {spread(walls('other_dvc'), '.1f')} s; epoch "
            f"{spread(other_epoch, '.3f')} s = {100 * floor / statistics.median(other_epoch):.0f}% of floor; "
            f"train {spread([r['other_dvc'].stage('train')[0] for r in results], '.1f')} s, "
            f"evaluate {spread([r['other_dvc'].stage('evaluate')[0] for r in results], '.1f')} s; "
            f"test accuracy {spread([r['other_accuracy'] for r in results], '.4f')}",
            "—",
        ),
        tax_row(results),
    ]
    note = (
        f"Floor: {n_params:,} parameters; FLOPs/epoch = 6·P·{first['n_train']:,} training samples "
        f"+ 2·P·{first['n_val']:,} validation samples (the measured epoch includes the validation "
        f"pass) = {flops / 1e9:.1f} GFLOP, at {gflops:.0f} GFLOP/s (best float32 2048×2048 numpy "
        "matmul, measured before and after the pairs). Epoch times are the gaps between "
        "consecutive epoch-end lines of the train stage's output (first epoch excluded)."
    )
    return rows, note


def tax(r: dict) -> dict[str, float]:
    """Seconds of a cold `dvc repro` that are not the train stage's epochs, by where they go.

    The train stage's epochs are counted as epochs x its median steady-state epoch; the rest
    of its wall time (imports, loading, building, the first epoch's tracing, saving) is tax.
    """
    cold = r["cold_dvc"]
    walls = {s: cold.stage(s)[0] for s in STAGES}
    epochs = r["params"]["epochs"] * statistics.median(cold.epoch_times())
    parts = {s: walls[s] for s in STAGES if s != "train"}
    parts["train, outside its epochs"] = walls["train"] - epochs
    parts["DVC itself"] = cold.wall - sum(walls.values())
    return parts


def tax_row(results: list[dict]) -> tuple[str, ...]:
    """Row i: the total tax and its parts (medians over the pairs)."""
    parts = [tax(r) for r in results]
    total = [sum(p.values()) for p in parts]
    detail = ", ".join(f"{k} {statistics.median(p[k] for p in parts):.2f}" for k in parts[0])
    return (
        "i. Not training: everything in a cold `dvc repro` but the train stage's epochs",
        "≤ 3 s",
        f"{spread(total, n=True)} s: {detail}",
        verdict(statistics.median(total) <= 3),
    )


def report(results: list[dict], gflops: float, pairs: int, quick: bool, load: float) -> str:
    """The Markdown report: header, target table, then per-stage wall time and memory."""
    rows, note = target_rows(results, gflops)
    lines = header(pairs, quick, load) + [
        "| Row | Target | Measured: median [min–max] | Result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    rss = {s: max(r["cold_dvc"].stage(s)[1] for r in results) for s in STAGES}
    lines += [
        "",
        "Per-stage cost of a cold `dvc repro` (each stage's command under /usr/bin/time):",
        "",
        "| Stage | Wall s: median [min–max] | Peak RSS MB (max) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s} | {spread([r['cold_dvc'].stage(s)[0] for r in results])} | {rss[s]:.0f} |" for s in STAGES
    ]
    overhead = [r["cold_dvc"].wall - sum(r["cold_dvc"].stage(s)[0] for s in STAGES) for r in results]
    plain_rss = max(p[2] for r in results for p in r["cold_plain"].procs)
    lines += [
        f"| DVC itself (repro wall − stage walls) | {spread(overhead)} | — |",
        f"| plain script, for comparison | {spread([r['cold_plain'].wall for r in results])} "
        f"| {plain_rss:.0f} |",
        "",
        f"{note} Load average at end {os.getloadavg()[0]:.2f}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Check the inputs, run the pairs in a temp folder, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one pair")
    args = parser.parse_args()
    pairs = 1 if args.quick else args.pairs
    if pairs < 1:
        fail("--pairs must be at least 1.")
    mirror = os.environ.get("DATA_MIRROR")
    if not mirror:
        fail("set DATA_MIRROR to a folder holding mnist/<the four MNIST IDX .gz files>.")
    if missing := [f for f in MNIST_FILES if not (Path(mirror) / "mnist" / f).is_file()]:
        fail(f"{mirror}/mnist/ lacks {', '.join(missing)}.")
    os.environ["DATA_MIRROR"] = str(Path(mirror).resolve())  # the clones live elsewhere
    load = os.getloadavg()[0]  # other work on the machine skews every number: record it
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        env = make_env(Path(tmp))
        gflops = matmul_gflops()
        results = []
        for i in range(pairs):
            print(f"bench: pair {i + 1}/{pairs} ...", file=sys.stderr, flush=True)
            results.append(pair(Path(tmp), env, i))
        gflops = max(gflops, matmul_gflops())
    text = report(results, gflops, pairs, args.quick, load)
    # This report is the top of RESULTS.md; the dated sections below it (`## ...`) stay.
    old = RESULTS.read_text() if RESULTS.exists() else ""
    rest = old[old.index("\n## ") + 1 :] if "\n## " in old else ""
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + rest if rest else text)
    print(text)


if __name__ == "__main__":
    main()
