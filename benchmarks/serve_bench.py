"""Serving figures for benchmarks/RESULTS.md: start-up, throughput, latency and memory.

    python benchmarks/serve_bench.py [--model models/model.keras] [--requests 1000]

Starts `python -m mnist_classifier.serve` on a free port, times it from launch to its first
answer, then sends the same photo-like 480x360 PNG of a digit as `POST /predict`, 1,000
requests at 1 and at 8 concurrent clients (Python clients, one keep-alive connection each,
on the same machine as the server), and prints requests per second, p50/p99 latency, the
errors and the server's memory after each run. It also times loading the model on each
Keras backend in a fresh process, which is how the server's backend was chosen.
"""

from __future__ import annotations

import argparse
import http.client
import io
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
LOAD = (
    "import os, sys, time; t = time.perf_counter(); os.environ['KERAS_BACKEND'] = sys.argv[1]\n"
    "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
    "import keras; m = keras.models.load_model(sys.argv[2], compile=False, safe_mode=True)\n"
    "m.predict(__import__('numpy').zeros((1, 784), 'uint8'), verbose=0)\n"
    "print(time.perf_counter() - t)\n"
)


def photo() -> bytes:
    """A 480x360 photo-like PNG of a 7: dark ink on grey paper, with noise."""
    image = Image.new("L", (480, 360), 225)
    ImageDraw.Draw(image).line([(170, 80), (310, 80), (220, 300)], fill=30, width=22)
    noisy = np.clip(np.asarray(image, np.float32) + np.random.default_rng(0).normal(0, 6, (360, 480)), 0, 255)
    out = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def load_times(model: str) -> dict[str, float]:
    """Seconds from a fresh interpreter to a first prediction, per backend."""
    times = {}
    for backend in ("numpy", "jax", "tensorflow"):
        out = subprocess.run(
            [sys.executable, "-c", LOAD, backend, model], capture_output=True, text=True, check=True
        )
        times[backend] = float(out.stdout.split()[-1])
    return times


def start(model: str, port: int) -> tuple[subprocess.Popen, float]:
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_classifier.serve", "--model", model, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, time.perf_counter() - began
        except OSError:
            time.sleep(0.05)


def load(port: int, body: bytes, clients: int, requests: int) -> tuple[float, list[float], int]:
    """(wall seconds, latencies, errors) of `requests` POSTs spread over `clients` connections."""
    share = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(n: int) -> tuple[list[float], int]:
        conn, lat, errors = http.client.HTTPConnection("127.0.0.1", port, timeout=60), [], 0
        for _ in range(n):
            t = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/png"})
            resp = conn.getresponse()
            resp.read()
            lat.append(time.perf_counter() - t)
            errors += resp.status != 200
        return lat, errors

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, share))
    wall = time.perf_counter() - began
    return wall, [x for lat, _ in results for x in lat], sum(e for _, e in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "model.keras"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    print(f"Serving, {datetime.now(UTC):%Y-%m-%d}, {cpu}, {psutil.cpu_count()} cores; model {args.model}\n")
    times = load_times(args.model)
    print("| backend | fresh process to first prediction |\n|---|---|")
    for backend, seconds in times.items():
        print(f"| {backend} | {seconds:.2f} s |")
    body = photo()
    proc, startup = start(args.model, args.port)
    try:
        print(
            f"\nServer start-up (launch to first answer): {startup:.2f} s; "
            f"memory {psutil.Process(proc.pid).memory_info().rss / 2**20:.0f} MB\n"
        )
        load(args.port, body, 2, 20)  # warm up
        print("| clients | requests | req/s | p50 ms | p99 ms | errors | server RSS after |")
        print("|---|---|---|---|---|---|---|")
        for clients in (1, 8):
            wall, lat, errors = load(args.port, body, clients, args.requests)
            q = statistics.quantiles(lat, n=100)
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            print(
                f"| {clients} | {len(lat)} | {len(lat) / wall:.0f} | {1000 * q[49]:.1f} | {1000 * q[98]:.1f} "
                f"| {errors} | {rss:.0f} MB |"
            )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
