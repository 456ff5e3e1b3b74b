"""Test helpers: tiny synthetic IDX datasets, a local HTTP mirror, a project copy to run DVC in."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("stages", "predict.py", "dvc.yaml", "params.yaml", "datasets.yaml", ".dvc/config", ".dvcignore", ".gitignore")
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """Raw IDX: big-endian magic, one big-endian uint32 per dimension, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def synthetic_digits(n: int, seed: int, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class c lights a bar at row 2c+4 (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 2 * c + 4, 3:25] = 255
    return images, labels.astype(np.uint8)


def write_dataset(directory: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, str]:
    """Write the four gzip IDX files of a tiny dataset; return role -> SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = synthetic_digits(n_train, seed)
    test_x, test_y = synthetic_digits(n_test, seed + 1)
    contents = {
        "train_images": idx_bytes(train_x, 0x803),
        "train_labels": idx_bytes(train_y, 0x801),
        "test_images": idx_bytes(test_x, 0x803),
        "test_labels": idx_bytes(test_y, 0x801),
    }
    shas = {}
    for role, raw in contents.items():
        data = gzip.compress(raw, mtime=0)
        (directory / FILE_NAMES[role]).write_bytes(data)
        shas[role] = hashlib.sha256(data).hexdigest()
    return shas


def catalogue_entry(shas: dict[str, str], mirrors: list[str] | None = None) -> dict:
    return {
        "classes": [str(i) for i in range(10)],
        "mirrors": mirrors or [],
        "files": {role: {"name": FILE_NAMES[role], "sha256": sha} for role, sha in shas.items()},
    }


def add_to_catalogue(catalogue: Path, name: str, entry: dict) -> None:
    data = yaml.safe_load(catalogue.read_text())
    data[name] = entry
    catalogue.write_text(yaml.safe_dump(data, sort_keys=False))


def set_params(params_file: Path, **values: object) -> None:
    data = yaml.safe_load(params_file.read_text())
    data.update(values)
    params_file.write_text(yaml.safe_dump(data, sort_keys=False))


SLOW_CHUNK, SLOW_DELAY_S = 64 * 1024, 0.01  # mode "slow": about 6 MB/s


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; `mode` (set per server) makes it misbehave on purpose.

    Modes: ok, 404, html (an error page with status 200), corrupt (first byte flipped),
    truncated (half the bytes, then the connection closes), slow (the whole file, trickled).
    """

    mode = "ok"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.mode == "404":
            self.send_error(404, "Not Found")
        elif self.mode == "html":
            body = b"<html><body>Service temporarily unavailable</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.mode in ("corrupt", "truncated"):
            path = Path(self.translate_path(self.path))
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.mode == "corrupt":
                self.wfile.write(bytes([data[0] ^ 0xFF]) + data[1:])
            else:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
        elif self.mode == "slow":  # trickles the file, so a test can kill a fetch midway
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                for start in range(0, len(data), SLOW_CHUNK):
                    self.wfile.write(data[start : start + SLOW_CHUNK])
                    self.wfile.flush()
                    time.sleep(SLOW_DELAY_S)
            except (BrokenPipeError, ConnectionResetError):  # the client was killed: expected
                self.close_connection = True
        else:
            super().do_GET()


@contextmanager
def http_mirror(directory: Path, mode: str = "ok") -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (a free port); yield its base URL."""
    handler = type("Handler", (MirrorHandler,), {"mode": mode})

    def make(*args: object, **kwargs: object) -> MirrorHandler:
        return handler(*args, directory=str(directory), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def copy_project(dest: Path) -> Path:
    """Copy the pipeline's own files into a fresh git repo at dest, committed."""
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "project")
    return dest


def tiny_project(tmp: Path) -> tuple[Path, Path]:
    """The project in tmp/project, on a tiny synthetic dataset served from tmp/mirror, with
    short training and small figures: (project, mirror). Nothing is committed beyond the copy."""
    shas = write_dataset(tmp / "mirror" / "tiny", n_train=600, n_test=200)
    proj = copy_project(tmp / "project")
    add_to_catalogue(proj / "datasets.yaml", "tiny", catalogue_entry(shas))
    set_params(proj / "params.yaml", dataset="tiny", epochs=2, batch_size=64,
               plot={"samples": 4, "predictions": 4, "misclassified": 4})
    return proj, tmp / "mirror"


def ran(output: str) -> set[str]:
    """The stages DVC's output says it ran."""
    return set(re.findall(r"Running stage '(\w+)'", output))


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first on PATH (dvc runs `python`)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **extra}
    if env.get("MUTANT_UNDER_TEST") == "stats":  # mutmut's coverage pass works in its own process only
        del env["MUTANT_UNDER_TEST"]
    return env


def run(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command (e.g. `dvc repro`, `python -m stages.fetch`) and capture its output."""
    proc = subprocess.run(list(args), cwd=cwd, env=env or tool_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
