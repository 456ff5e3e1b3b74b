"""`make serve`: draw a digit in the browser (or drop a photo) and watch the model answer.

    python -m mnist_classifier.serve [--model models/model.keras | --rev v1.2.0|prod]
                                     [--host 127.0.0.1] [--port 8000] [--collect DIR]
    (or `mnist-serve ...`, or `make serve`)

One page (mnist_classifier/static/index.html, no file from any CDN: it works offline) and a
JSON API it uses, which scripts can use too:

    curl --data-binary @seven.png -H 'Content-Type: image/png' http://127.0.0.1:8000/predict

answers the predicted class (a number's digits read left to right, each with its own
answer under "digits"), every class's probability, the top 3, the 28x28 picture the model
saw (as a PNG data URL) and which model answered (its MD5, the hash DVC records, and its
released version when served by `--rev`): mnist_classifier/classifier.py. The model is
loaded once, before the server listens, on Keras' NumPy backend (no TensorFlow import).
Bad input gets a 4xx with one JSON message and the server goes on serving; it listens on
the loopback address unless told otherwise.

With `--collect DIR` (off unless asked), the page also offers "that was a ...": the picture
is saved under its corrected label as DIR/<label>/<hash>.png (or .jpg), a folder own set
(mnist_classifier/own_sets.py) that `dvc add DIR` versions and the `mix` param trains on.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mnist_classifier.classifier import Classifier, load_classifier
from mnist_classifier.cli import run_program
from mnist_classifier.decoding import PictureTooLargeError
from mnist_classifier.errors import PipelineError
from mnist_classifier.own_sets import save_picture
from mnist_classifier.pipeline import pipeline_path
from mnist_classifier.release import released_model

MAX_BYTES = 5 * 1024 * 1024  # a request body: a phone photo fits, a video does not
# A body over the limit is read to its end (and dropped) up to this much, so the client, still
# sending, gets the 413 and its message instead of a connection reset; beyond it, it is cut.
DRAIN_BYTES = 32 * 1024 * 1024
MAX_UPLOAD_SIDE = 4096  # pixels a side: more is a poster, not a digit, and costs memory to decode
# Pictures decoded at once (--max-pictures). Decoding is where an upload costs memory (a 750-byte
# lossless 4096x4096 WebP takes about 235 MB), so the server's peak is about the model plus this
# many pictures. Up to MAX_WAITING more requests wait for their turn (each holds only its body,
# at most MAX_BYTES); past that, a request gets a 503 at once, with Retry-After (--max-waiting).
MAX_PICTURES = 2
MAX_WAITING = 64
BODY_TIMEOUT_S = 30  # an upload that stalls longer gets a 408 and frees its connection
SHUTDOWN_TIMEOUT_S = 5  # Ctrl-C: requests still open after this are cut
STATIC = Path(__file__).parent / "static"
ACCEPTED = ("image/", "application/octet-stream")


def create_app(
    classifier: Classifier,
    max_pictures: int = MAX_PICTURES,
    max_waiting: int = MAX_WAITING,
    body_timeout_s: float = BODY_TIMEOUT_S,
    collect: Path | None = None,
) -> Any:
    """The Starlette app: the page, /info, /predict, /health and, with `collect`, /collect;
    every error a JSON `{"error": "..."}`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    page = (STATIC / "index.html").read_text(encoding="utf-8")
    decoding = asyncio.Semaphore(max_pictures)
    inside = [0]  # requests decoding a picture or waiting to

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(
            {"classes": classifier.classes, "model": classifier.identity(), "collect": collect is not None}
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def picture_body(request: Request) -> bytes | JSONResponse:
        """The request's picture bytes, or the error answer: a picture's media type, within
        MAX_BYTES, whole within the body timeout."""
        kind = request.headers.get("content-type", "")
        if not kind.lower().startswith(ACCEPTED):  # media types are case-insensitive
            return error(
                415, f"the body must be a picture (Content-Type image/png, image/jpeg, ...), not {kind!r}."
            )
        too_large = error(413, f"the picture is over {MAX_BYTES:,} bytes; at most {MAX_BYTES:,} are taken.")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > DRAIN_BYTES:
            return too_large
        body, size = bytearray(), 0
        try:
            async with asyncio.timeout(body_timeout_s):
                async for chunk in request.stream():  # counted as it comes: a lying header cannot help
                    size += len(chunk)
                    if size > DRAIN_BYTES:
                        return too_large
                    if size <= MAX_BYTES:
                        body += chunk
        except ClientDisconnect:
            return error(400, "the upload was cut off.")
        except TimeoutError:
            return error(408, f"the upload stalled: no whole picture within {body_timeout_s:g} s.")
        if size > MAX_BYTES:
            return too_large
        if not body:
            return error(400, "the body is empty: send the picture's bytes.")
        return bytes(body)

    async def answered(body: bytes) -> dict[str, Any] | JSONResponse:
        """The model's answer to a picture, read in its turn (at most max_pictures at once,
        max_waiting more waiting, past that a 503), or the error answer."""
        if inside[0] >= max_pictures + max_waiting:
            response = error(
                503, f"busy: {inside[0]} pictures are being read or wait; try again in a moment."
            )
            response.headers["Retry-After"] = "1"
            return response
        inside[0] += 1  # counted on the event loop's one thread: no lock needed
        try:
            async with decoding:
                answer = await run_in_threadpool(classifier.predict, body, MAX_UPLOAD_SIDE)
        except PictureTooLargeError as exc:
            return error(413, str(exc))
        except PipelineError as exc:
            return error(422, str(exc))
        finally:
            inside[0] -= 1
        return answer

    async def predict(request: Request) -> JSONResponse:
        body = await picture_body(request)
        if isinstance(body, JSONResponse):
            return body
        answer = await answered(body)
        return answer if isinstance(answer, JSONResponse) else JSONResponse(answer)

    async def save(request: Request) -> JSONResponse:
        label = request.query_params.get("label", "")
        if collect is None:
            return error(404, "collecting is off; start the server with --collect DIR to save corrections.")
        if label not in classifier.classes:
            return error(
                400, f"label {label!r} is no class; give ?label= one of {', '.join(classifier.classes)}."
            )
        body = await picture_body(request)
        if isinstance(body, JSONResponse):
            return body
        answer = await answered(body)  # a picture the model can read (one digit), or a 4xx: never junk
        if isinstance(answer, JSONResponse):
            return answer
        if len(answer["digits"]) != 1:
            return error(422, f"the picture holds {len(answer['digits'])} digits; save one digit at a time.")
        try:
            saved, count = await run_in_threadpool(save_picture, collect, label, body)
        except PipelineError as exc:
            return error(422, str(exc))
        except OSError as exc:
            return error(507, f"cannot save into {collect}: {exc.strerror or exc}.")
        if saved is None:
            return error(
                507, f"{collect} holds {count:,} pictures, the most it takes; `dvc add` it and collect anew."
            )
        return JSONResponse(
            {"saved": str(saved), "label": label, "count": count, "predicted": answer["predicted"]}
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        """Starlette's own answers (404, 405) in the same shape as ours."""
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "") or "error"
        if status == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        elif status == 404:
            api = "/predict, /collect, /info and /health"
            detail = f"nothing at {request.url.path}; the page is /, the API {api}."
        return error(status, detail)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(exc).__name__}); the server goes on. This is a bug.")

    return Starlette(
        exception_handlers={HTTPException: http_error, Exception: server_error},
        routes=[
            Route("/", index),
            Route("/info", info),
            Route("/health", health),
            Route("/predict", predict, methods=["POST"]),
            Route("/collect", save, methods=["POST"]),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model", type=Path, help="a .keras file (default: dvc.yaml's model_file, models/model.keras)"
    )
    source.add_argument("--rev", help="a released version (v1.2.0) or stage (prod) of mnist-classifier")
    parser.add_argument("--repo", default=".", help="where --rev is looked up (default: this repository)")
    parser.add_argument("--host", default="127.0.0.1", help="default %(default)s: this machine only")
    parser.add_argument("--port", type=port_number, default=8000)
    parser.add_argument(
        "--max-pictures",
        type=positive,
        default=MAX_PICTURES,
        help="pictures decoded at once; memory is about the model plus this many (default %(default)s)",
    )
    parser.add_argument(
        "--max-waiting",
        type=not_negative,
        default=MAX_WAITING,
        help="requests that may wait for their turn; past that, a 503 (default %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=positive,
        default=BODY_TIMEOUT_S,
        help="seconds an upload may take; a stalled one gets a 408 (default %(default)s)",
    )
    parser.add_argument(
        "--collect",
        type=Path,
        metavar="DIR",
        help="offer 'that was a ...' on the page, saving corrected pictures as DIR/<label>/ "
        "(an own set: docs/own-data.md); off by default",
    )
    args = parser.parse_args()
    if args.collect is not None and args.collect.exists() and not args.collect.is_dir():
        raise PipelineError(
            f"--collect {args.collect}: not a folder; give a folder (it is created if absent)."
        )

    import uvicorn

    listening = listen(args.host, args.port)  # before the model loads: a port in use is one line
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mnist-serve-") as tmp:
        if args.rev:
            model_path, version = released_model(args.rev, args.repo, Path(tmp))
        else:
            model_path, version = args.model or pipeline_path("model_file"), None
        classifier = load_classifier(model_path, version)
    app = create_app(classifier, args.max_pictures, args.max_waiting, args.body_timeout, args.collect)
    host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address, as URLs write it
    print(
        f"serve: model {classifier.md5[:12]} ({version or model_path}) loaded in "
        f"{time.perf_counter() - started:.1f} s; http://{host}:{listening.getsockname()[1]}/"
        + (f"; saving corrections in {args.collect}/" if args.collect else ""),
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S)
    uvicorn.Server(config).run(sockets=[listening])


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: give a number from 0 (any free one) to 65535"
        )
    return int(text)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, at least 1")
    return int(text)


def not_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 0 or more")
    return int(text)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port for uvicorn to serve on, or one line saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PipelineError(f"--host {host}: not an address of this machine ({exc.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds its own
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PipelineError(
                f"port {port} on {host} is in use (another server?): stop it, or choose one with --port."
            ) from None
        raise PipelineError(f"cannot listen on {host}:{port}: {exc.strerror}.") from None
    return sock


def cli() -> None:
    """The `mnist-serve` console script."""
    run_program("serve", main)


if __name__ == "__main__":
    cli()
