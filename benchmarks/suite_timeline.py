"""Where the test suite's wall time goes: each worker's busy time and its idle tail.

CI must run the suite in under 15 minutes on two cores. Its wall time is the busier worker's,
so what counts is the total work and how evenly pytest-xdist spreads it: this records when each
test ran on which worker and prints, per worker, its tests, its busy seconds and how long it sat
idle before the last one finished, then the slowest modules and tests.

    # as a pytest plugin, writing one JSON line per test (any pytest options after it):
    TIMELINE_OUT=/tmp/timeline.jsonl python -m pytest -p benchmarks.suite_timeline -n auto
    # the table:
    python benchmarks/suite_timeline.py /tmp/timeline.jsonl [--top 15]

Figures: benchmarks/RESULTS.md ("the test suite's wall time").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Time setup, call and teardown of each test together, as the worker spends them."""
    start = time.time()
    yield
    record = {
        "test": item.nodeid,
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "start": start,
        "end": time.time(),
    }
    with open(os.environ.get("TIMELINE_OUT", "timeline.jsonl"), "a") as out:  # one line: atomic enough
        out.write(json.dumps(record) + "\n")


def table(records: list[dict], top: int) -> str:
    t0 = min(r["start"] for r in records)
    wall = max(r["end"] for r in records) - t0
    lines = [
        f"tests: {len(records)}; first start to last end: {wall:.0f} s",
        "",
        "| worker | tests | busy s | idle before the end s |",
        "|---|---|---|---|",
    ]
    by_worker: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_worker[r["worker"]].append(r)
    for worker, rows in sorted(by_worker.items()):
        busy = sum(r["end"] - r["start"] for r in rows)
        last = max(r["end"] for r in rows) - t0
        lines.append(f"| {worker} | {len(rows)} | {busy:.0f} | {wall - last:.0f} |")
    total = sum(r["end"] - r["start"] for r in records)
    lines += ["", f"busy in all: {total:.0f} s; evenly spread: {total / len(by_worker):.0f} s each", ""]
    modules: dict[str, float] = defaultdict(float)
    for r in records:
        modules[r["test"].split("::")[0]] += r["end"] - r["start"]
    lines += ["| module | busy s |", "|---|---|"]
    lines += [f"| {m} | {s:.0f} |" for m, s in sorted(modules.items(), key=lambda kv: -kv[1])[:top]]
    lines += ["", "| test | worker | s |", "|---|---|---|"]
    slowest = sorted(records, key=lambda r: r["start"] - r["end"])[:top]
    lines += [f"| {r['test']} | {r['worker']} | {r['end'] - r['start']:.0f} |" for r in slowest]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("timeline", type=Path, help="the JSON lines the plugin wrote")
    parser.add_argument("--top", type=int, default=15, help="modules and tests to list (default 15)")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.timeline.read_text().splitlines() if line.strip()]
    if not records:
        raise SystemExit(f"suite_timeline: {args.timeline} holds no tests")
    print(table(records, args.top))


if __name__ == "__main__":
    main()
