"""Downloading a dataset's four IDX gzip files, verified, into one directory.

Sources are tried in order: $DATA_MIRROR/<dataset>/ first (a directory or a base URL),
then the catalogue's mirrors. A file is accepted only if its SHA-256 matches the
catalogue; the directory appears only when all four files are in, so a failed or
killed fetch never leaves anything for DVC to cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from mnist_classifier.catalogue import Dataset, RemoteFile
from mnist_classifier.errors import PipelineError
from mnist_classifier.files import atomic_output

CHUNK = 1 << 20
DEFAULT_TIMEOUT_S = 30.0


class SourceError(Exception):
    """One source could not supply one file; the reason goes into the final report."""


def sources(dataset: Dataset, data_mirror: str | None) -> list[str]:
    """Base locations to try, in order: DATA_MIRROR's dataset folder, then the mirrors."""
    found = [m.rstrip("/") for m in dataset.mirrors]
    if data_mirror:
        found.insert(0, f"{data_mirror.rstrip('/')}/{dataset.name}")
    return found


def _is_url(base: str) -> bool:
    return base.split(":", 1)[0].lower() in ("http", "https", "file")


@contextmanager
def _open(base: str, name: str, timeout: float) -> Iterator[tuple[BinaryIO, int | None]]:
    """Open `name` at a URL or in a directory; yield the stream and its announced size."""
    if not _is_url(base):
        path = Path(base) / name
        try:
            with open(path, "rb") as f:
                yield f, path.stat().st_size
        except OSError as exc:
            raise SourceError(exc.strerror or str(exc)) from None
        return
    try:
        with urllib.request.urlopen(f"{base}/{name}", timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            yield resp, int(length) if length and length.isdigit() else None
    except urllib.error.HTTPError as exc:
        raise SourceError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise SourceError(str(exc.reason)) from None
    except TimeoutError:
        raise SourceError(f"timed out: no answer within {timeout:g} s (FETCH_TIMEOUT)") from None
    except (OSError, HTTPException) as exc:
        raise SourceError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None


def _progress(name: str, done: int, total: int | None, final: bool = False) -> None:
    size = f"{done / 1e6:.2f}" + (f"/{total / 1e6:.2f} MB" if total else " MB")
    pct = f"{100 * done // total:3d}% " if total else ""
    end = "\n" if final or not sys.stderr.isatty() else ""
    print(f"\rfetch: {name} {pct}{size}", end=end, file=sys.stderr, flush=True)


def download(base: str, remote: RemoteFile, dest_dir: Path, timeout: float) -> None:
    """Copy one file from `base` into dest_dir, or raise SourceError and leave nothing."""
    part = dest_dir / f".{remote.name}.part"
    digest, done, head = hashlib.sha256(), 0, b""
    try:
        with _open(base, remote.name, timeout) as (stream, total), open(part, "wb") as out:
            shown = time.monotonic()
            while chunk := stream.read(CHUNK):
                head = head or chunk[:16]
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - shown > 2 and sys.stderr.isatty():
                    _progress(remote.name, done, total)
                    shown = time.monotonic()
        if total is not None and done < total:
            raise SourceError(f"cut short: got {done} of {total} bytes")
        if digest.hexdigest() != remote.sha256:
            what = "an HTML page" if head.lstrip()[:1] == b"<" else "different bytes"
            raise SourceError(
                f"served {what} (SHA-256 {digest.hexdigest()[:12]}..., expected {remote.sha256[:12]}...)"
            )
    except (TimeoutError, OSError, HTTPException) as exc:
        part.unlink(missing_ok=True)
        raise SourceError(f"transfer failed: {type(exc).__name__}: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _progress(remote.name, done, total, final=True)
    os.replace(part, dest_dir / remote.name)


def fetch(dataset: Dataset, out_dir: Path, data_mirror: str | None, timeout: float) -> None:
    """Fill out_dir with the dataset's verified files, trying each source in order."""
    bases = sources(dataset, data_mirror)
    with atomic_output(out_dir, directory=True) as tmp:
        for remote in dataset.files.values():
            failures = []
            for base in bases:
                try:
                    download(base, remote, tmp, timeout)
                    break
                except SourceError as exc:
                    failures.append(f"  {base}/{remote.name}: {exc}")
                    if base != bases[-1]:
                        print(f"fetch: {failures[-1].strip()}; trying the next source", file=sys.stderr)
            else:
                tried = "\n".join(failures) or "  (no sources: the catalogue lists no mirrors)"
                names = ", ".join(f.name for f in dataset.files.values())
                raise PipelineError(
                    f"could not get {remote.name} of dataset {dataset.name!r}. Tried:\n{tried}\n"
                    f"Without network, put {names} in <dir>/{dataset.name}/ and run with "
                    "DATA_MIRROR=<dir> (a directory or a base URL), e.g. "
                    "`DATA_MIRROR=/path/to/data dvc repro`."
                )
