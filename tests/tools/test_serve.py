"""`make serve`: the JSON API on a real uvicorn, and the page in a real headless Chromium.

The model is trained here on what a person draws on the page (bars are 1s, rings are 0s),
so a test can draw for it; pictures are real PNG and JPEG files; the browser is Debian's
Chromium driven by Playwright. A server or browser that cannot start fails the test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_classifier.decoding import read_image
from mnist_classifier.normalise import to_mnist
from mnist_classifier.own_sets import read_folder
from tests.support.paths import ROOT
from tests.support.pictures import side_by_side, stroke_model, stroke_picture
from tests.support.servers import served

pytestmark = pytest.mark.slow  # a server subprocess that loads Keras, and a browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "serve.png"  # the README's picture, refreshed by SAVE_SCREENSHOT=1


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stroke_model(tmp_path_factory.mktemp("model") / "strokes.keras")


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the module's server saves corrections in (`--collect`)."""
    return tmp_path_factory.mktemp("collected") / "own"


@pytest.fixture(scope="module")
def server(model: Path, collected: Path) -> tuple[str, object]:
    with served("--model", str(model), "--body-timeout", "3", "--collect", str(collected)) as (url, proc):
        yield url, proc


def encoded(grey: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(out, format=fmt)
    return out.getvalue()


def request(url: str, method: str = "GET", body: bytes | None = None, kind: str = "image/png"):
    """(status, headers, JSON body) of any request, error or not."""
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read())


def post(url: str, body: bytes, kind: str = "image/png") -> tuple[int, dict]:
    """POST a picture to /predict: (status, JSON answer), error or not."""
    status, _, answer = request(f"{url}/predict", "POST", body, kind)
    return status, answer


def drawings(n: int, seed: int) -> list[tuple[str, bytes, str]]:
    """n drawings alternating bar and ring, as PNG and JPEG: (expected class, body, type)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind, fmt = ("bar", "1") if i % 2 else ("ring", "0"), "PNG" if i % 4 < 2 else "JPEG"
        out.append((kind[1], encoded(stroke_picture(kind[0], rng), fmt), f"image/{fmt.lower()}"))
    return out


def test_good_png_and_jpeg_are_answered_in_full(server: tuple[str, object]) -> None:
    url, _ = server
    for expected, body, kind in drawings(4, seed=1):
        status, answer = post(url, body, kind)
        assert status == 200, answer
        assert answer["predicted"] == expected
        probs = answer["probabilities"]
        assert list(probs) == [str(i) for i in range(10)] and sum(probs.values()) == pytest.approx(
            1, abs=1e-4
        )
        assert [t["class"] for t in answer["top3"]][0] == expected and len(answer["top3"]) == 3
        assert answer["model"]["md5"] and len(answer["model"]["md5"]) == 32
        seen = Image.open(io.BytesIO(base64.b64decode(answer["digit"].split(",", 1)[1])))
        assert seen.size == (28, 28)


def bad_bodies() -> dict[str, tuple[bytes, str, int, str]]:
    """Each bad input: (body, content type, status, words of the message)."""
    bomb = io.BytesIO()
    Image.new("1", (9500, 9500), 1).save(bomb, format="PNG")  # 90 Mpx in a few kB
    wide = io.BytesIO()
    Image.new("L", (5000, 40), 255).save(wide, format="PNG")
    return {
        "not an image": (b"hello, this is text", "image/png", 422, "not a picture Pillow can read here"),
        "empty": (b"", "image/png", 400, "the body is empty"),
        "over 5 MB": (os.urandom(6 * 1024 * 1024), "image/png", 413, "at most 5,242,880 are taken"),
        "over 4096 px": (wide.getvalue(), "image/png", 413, "at most 4096 a side"),
        "a bomb": (bomb.getvalue(), "image/png", 413, "decompression-bomb"),
        "wrong type": (b"{}", "application/json", 415, "must be a picture"),
        "blank": (encoded(np.ones((80, 80), np.float32), "PNG"), "image/png", 422, "no ink found"),
    }


@pytest.mark.parametrize("case", bad_bodies())
def test_bad_input_gets_one_json_message_and_the_server_goes_on(
    server: tuple[str, object], case: str
) -> None:
    url, proc = server
    body, kind, status, words = bad_bodies()[case]
    got, answer = post(url, body, kind)
    assert (got, list(answer)) == (status, ["error"]) and words in answer["error"], answer
    assert "\n" not in answer["error"]
    expected, good, good_kind = drawings(1, seed=2)[0]
    status, answered = post(url, good, good_kind)  # the next request is served as ever
    assert (status, answered["predicted"]) == (200, expected) and proc.poll() is None


def test_fifty_concurrent_requests_answer_as_sequential_ones_and_memory_stays_flat(
    server: tuple[str, object],
) -> None:
    import psutil

    url, proc = server
    requests = drawings(50, seed=3)
    sequential = [post(url, body, kind) for _, body, kind in requests]
    with ThreadPoolExecutor(max_workers=50) as pool:
        concurrent = list(pool.map(lambda r: post(url, r[1], r[2]), requests))
    assert concurrent == sequential
    assert [a["predicted"] for _, a in concurrent] == [e for e, _, _ in requests]

    def burst() -> None:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda r: post(url, r[1], r[2]), requests))

    burst()  # the threads and their buffers exist from here on
    rss_before = psutil.Process(proc.pid).memory_info().rss
    for _ in range(6):  # 300 more requests
        burst()
    grown = (psutil.Process(proc.pid).memory_info().rss - rss_before) / 2**20
    assert grown < 20, f"the server grew {grown:.0f} MB over 300 requests"


def test_every_answer_is_json_and_media_types_are_read_as_the_standard_says(
    server: tuple[str, object], tmp_path: Path
) -> None:
    url, _ = server
    expected, good, _ = drawings(1, seed=4)[0]
    status, _, answer = request(f"{url}/predict", "POST", good, "IMAGE/PNG")  # case-insensitive
    assert (status, answer["predicted"]) == (200, expected), answer
    eps = io.BytesIO()
    Image.new("L", (64, 64), 255).save(eps, format="EPS")  # Pillow would hand it to Ghostscript
    for method, path, body, status, words in [
        ("GET", "/predict", None, 405, "GET is not allowed on /predict"),
        ("GET", "/nothing", None, 404, "nothing at /nothing"),
        ("POST", "/predict", eps.getvalue(), 422, "not a picture Pillow can read here"),
    ]:
        got, _, answer = request(f"{url}{path}", method, body)
        assert (got, list(answer)) == (status, ["error"]) and words in answer["error"], answer


def big_drawing() -> bytes:
    """A 4096x4096 picture of a ring in a lossless WebP of a few kB: about 235 MB to decode."""
    from PIL import ImageDraw

    canvas = Image.new("L", (4096, 4096), 255)
    ImageDraw.Draw(canvas).ellipse([1200, 800, 2900, 3300], outline=0, width=260)
    out = io.BytesIO()
    canvas.save(out, format="WEBP", lossless=True)
    return out.getvalue()


def test_past_its_limit_the_server_says_busy_and_its_memory_stays_bounded(model: Path) -> None:
    """16 uploads at once that take 235 MB each to decode, on a server that decodes two at a
    time (the default) and lets 8 wait: the rest get a 503 at once, and the server peaks under
    1 GB, the model and two pictures (sixteen once took 4.2 GB)."""
    import threading

    import psutil

    body = big_drawing()
    assert len(body) < 50_000
    with served("--model", str(model), "--max-waiting", "8") as (url, proc):
        server = psutil.Process(proc.pid)
        base, peak, done = server.memory_info().rss, [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], server.memory_info().rss)
                done.wait(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = list(pool.map(lambda _: request(f"{url}/predict", "POST", body), range(16)))
        finally:
            done.set()
            sampler.join()
        assert peak[0] < 2**30, (
            f"the server peaked at {peak[0] / 2**20:.0f} MB (it started at {base / 2**20:.0f})"
        )
        busy = [(h, a) for status, h, a in answers if status == 503]
        served_ = [a for status, _, a in answers if status in (200, 422)]  # read: a digit, or no ink
        assert len(busy) + len(served_) == 16 and len(served_) >= 10, [s for s, _, _ in answers]
        assert busy and all("busy" in a["error"] and h["Retry-After"] == "1" for h, a in busy)
        status, _, _ = request(f"{url}/predict", "POST", drawings(1, seed=5)[0][1])
        assert status == 200 and proc.poll() is None  # and it goes on


def serve_fails(*args: str, timeout: float = 120) -> tuple[int, str]:
    import sys

    from tests.support.commands import run

    proc = run(ROOT, sys.executable, "-m", "mnist_classifier.serve", *args, check=False, timeout=timeout)
    return proc.returncode, proc.stderr


def test_bad_arguments_and_a_port_in_use_are_one_line_before_the_model_loads(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", str(port)], 1, f"port {port} on 127.0.0.1 is in use"),
            (["--port", "70000"], 2, "'70000' is not a port"),
            (["--max-pictures", "0"], 2, "at least 1"),
            (["--rev", "v1.0.0", "--repo", str(tmp_path)], 1, "not a git repository"),
        ]
        for args, code, words in cases:
            rc, err = serve_fails(*args)
            lines = err.strip().splitlines()
            assert rc == code and words in lines[-1] and "Traceback" not in err, (args, err)
            assert "loaded" not in err  # refused before the model was read


def test_a_default_server_on_ipv6_prints_a_url_a_browser_takes_and_collects_nothing(model: Path) -> None:
    with served("--model", str(model), "--host", "::1") as (url, _):
        status, _, answer = request(f"{url}/info")
        log = (Path(os.environ.get("TMPDIR", "/tmp")) / f"serve-{url.rsplit(':', 1)[1]}.log").read_text()
        # Saving corrections is opt-in: this server, started without --collect, saves nothing.
        bar = encoded(stroke_picture("bar", rng()), "PNG")
        refused_status, _, refused = request(f"{url}/collect?label=1", "POST", bar)
    assert status == 200 and answer["model"]["md5"]
    assert f"{url}/" in log, log  # http://[::1]:PORT/, not http://::1:PORT/
    assert answer["collect"] is False
    assert refused_status == 404 and "--collect DIR" in refused["error"]


def rng() -> np.random.Generator:
    return np.random.default_rng(5)


def test_collect_files_a_picture_under_its_label_once_and_refuses_what_it_cannot_file(
    server: tuple[str, object], collected: Path
) -> None:
    url, _ = server
    bar = encoded(stroke_picture("bar", rng()), "PNG")
    cases = [  # (query, body, status, words)
        ("label=x", bar, 400, "label 'x' is no class"),
        ("", bar, 400, "label '' is no class"),
        ("label=4", b"not a picture", 422, "not a picture Pillow can read"),
        ("label=4", encoded(np.zeros((64, 64)), "PNG"), 422, "no ink found"),
        (
            "label=4",
            encoded(1 - side_by_side([1 - stroke_picture("bar", rng())] * 2), "PNG"),
            422,
            "holds 2 digits",
        ),
    ]
    for query, body, code, words in cases:
        status, _, answer = request(f"{url}/collect?{query}", "POST", body)
        assert status == code and words in answer["error"], (query, answer)
    assert not (collected / "4").exists()  # nothing filed for any of them
    status, _, answer = request(f"{url}/collect?label=7", "POST", bar)
    assert status == 200 and answer["label"] == "7" and answer["predicted"] == "1", answer
    saved = Path(answer["saved"])
    assert saved.parent == collected / "7" and saved.read_bytes() == bar
    count = answer["count"]
    status, _, again = request(f"{url}/collect?label=7", "POST", bar)  # a double click: one file
    assert again["saved"] == answer["saved"] and again["count"] == count


def test_a_stalled_upload_gets_a_408_and_the_server_goes_on(server: tuple[str, object]) -> None:
    import http.client

    url, proc = server
    host, port = url.removeprefix("http://").split(":")
    stalled = http.client.HTTPConnection(host, int(port), timeout=30)
    stalled.putrequest("POST", "/predict")
    stalled.putheader("Content-Type", "image/png")
    stalled.putheader("Content-Length", "100000")
    stalled.endheaders(b"\x89PNG" * 10)  # 40 of the 100,000 bytes it announced, then nothing
    answer = stalled.getresponse()  # within the 3 s this server gives an upload
    assert answer.status == 408 and json.loads(answer.read()) == {
        "error": "the upload stalled: no whole picture within 3 s."
    }
    stalled.close()
    expected, good, kind = drawings(1, seed=6)[0]
    assert post(url, good, kind)[1]["predicted"] == expected and proc.poll() is None


def test_ctrl_c_ends_the_server_even_with_an_upload_stalled_midway(model: Path) -> None:
    import signal
    import socket
    import time

    with served("--model", str(model)) as (url, proc):
        host, port = url.removeprefix("http://").split(":")
        stalled = socket.create_connection((host, int(port)))
        stalled.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\x89PNG" * 10
        )
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        stalled.close()
    assert time.monotonic() - started < 20, "shutdown waited on the stalled upload"


def test_it_listens_on_the_loopback_address_by_default(server: tuple[str, object]) -> None:
    import psutil

    _, proc = server
    listening = [
        c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening


def test_the_page_is_served_with_nothing_from_elsewhere(server: tuple[str, object]) -> None:
    url, _ = server
    with urllib.request.urlopen(url, timeout=10) as resp:
        page = resp.read().decode()
    assert "<canvas" in page and "predict" in page
    assert "http://" not in page and "https://" not in page and "//cdn" not in page


# --- the page, in a real browser ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> object:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (make test does, as root)"
    )
    # Playwright's launch gives each browser a new, temporary user-data dir of its own.
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield browser
        browser.close()


def draw(page: object, points: list[tuple[float, float]]) -> None:
    """A stroke with the mouse through points given as fractions of the pad."""
    box = page.locator("#pad").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def answer_of(page: object) -> str:
    page.wait_for_function("document.getElementById('answer').textContent.length > 0", timeout=20_000)
    return page.locator("#answer").text_content()


def test_drawing_a_1_and_a_0_on_the_page_gets_them_read(
    server: tuple[str, object], browser: object, tmp_path: Path
) -> None:
    url, _ = server
    page = browser.new_page(viewport={"width": 900, "height": 700})
    page.goto(url)
    draw(page, [(0.5, 0.18), (0.5, 0.5), (0.52, 0.82)])  # a vertical bar
    assert answer_of(page) == "1"
    assert page.locator("#top3 .bar").count() == 3
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")

    page.click("#clear")
    assert page.locator("#answer").text_content() == ""
    ring = [(0.5 + 0.2 * np.sin(t), 0.5 - 0.3 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]
    draw(page, ring)
    assert answer_of(page) == "0"

    # A number: a bar, then a ring beside it, is read left to right as 10, one bar per digit.
    page.click("#clear")
    draw(page, [(0.22, 0.25), (0.22, 0.5), (0.23, 0.75)])
    ring = [(0.65 + 0.14 * np.sin(t), 0.5 - 0.25 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]
    draw(page, ring)
    page.wait_for_function("document.getElementById('answer').textContent === '10'", timeout=20_000)
    assert page.locator("#top3 .bar").count() == 2
    assert page.locator("#seen-more img").count() == 1
    footer = page.locator("#model").text_content()
    assert "MD5" in footer and "classes: 0, 1, 2" in footer
    page.screenshot(path=str(tmp_path / "page.png"))
    if os.environ.get("SAVE_SCREENSHOT"):  # how docs/serve.png is made
        page.screenshot(path=str(SCREENSHOT))
    assert (tmp_path / "page.png").stat().st_size > 0


def test_that_was_a_on_the_page_saves_the_drawing_as_an_own_set_reads_it(
    server: tuple[str, object], browser: object, collected: Path
) -> None:
    url, _ = server
    page = browser.new_page()
    page.goto(url)
    ring = [(0.5 + 0.2 * np.sin(t), 0.5 - 0.3 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]
    draw(page, ring)
    assert answer_of(page) == "0"
    assert page.locator("#collect").is_visible()
    page.click("#collect button[data-label='6']")  # "no: that was a 6"
    page.wait_for_function("document.getElementById('saved').textContent.startsWith('Saved as a 6')")
    files = list((collected / "6").iterdir())
    assert len(files) == 1 and files[0].suffix == ".png"
    # The folder is an own set: preprocess reads the drawing as predict read it, labelled 6.
    pictures, seen = read_folder(collected, tuple(map(str, range(10))), problems := [])
    assert not problems and seen >= 1
    mine = [i for i, s in enumerate(pictures.sources) if s == str(files[0])]
    assert len(mine) == 1 and pictures.labels[mine[0]] == 6
    np.testing.assert_array_equal(pictures.x[mine[0]], to_mnist(read_image(files[0])).reshape(-1))
    # A number is not one label: the buttons go away.
    page.click("#clear")
    draw(page, [(0.22, 0.25), (0.22, 0.5), (0.23, 0.75)])
    draw(page, [(0.65 + 0.14 * np.sin(t), 0.5 - 0.25 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)])
    page.wait_for_function("document.getElementById('answer').textContent === '10'", timeout=20_000)
    assert not page.locator("#collect").is_visible()


def test_uploading_a_photo_and_a_bad_file_on_the_page(
    server: tuple[str, object], browser: object, tmp_path: Path
) -> None:
    url, _ = server
    page = browser.new_page()
    page.goto(url)
    drawn = stroke_picture("bar", np.random.default_rng(9))
    photo = tmp_path / "bar.jpg"
    Image.fromarray(np.round(drawn * 230).astype(np.uint8)).convert("RGB").save(photo, quality=85)
    page.set_input_files("#file", str(photo))
    assert answer_of(page) == "1"

    bad = tmp_path / "notes.png"
    bad.write_text("not a picture at all")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=20_000)
    assert "not a picture Pillow can read here" in page.locator("#error").text_content()
    assert page.locator("#answer").text_content() == "?"
