"""`advseg serve` as a client sees it: the app in-process (FastAPI's TestClient) and over real
loopback HTTP (uvicorn in a thread) on tiny bundles and on the embedded default; every endpoint,
every refusal, the bounded queue (503 + Retry-After), the timeout (504), batching, a client that
disconnects, and `advseg serve` as a subprocess."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="needs the serve extra (pip install -e '.[serve]')")
httpx = pytest.importorskip("httpx", reason="needs httpx (the dev extra)")

from fastapi.testclient import TestClient  # noqa: E402
from test_bundle import export_onnx, local_convnet, make_bundle, sketch_from_photo  # noqa: E402

from advseg_sdk.serve import create_app  # noqa: E402
from advseg_sdk.serve.app import serve_in_thread  # noqa: E402

BIN = Path(sys.executable).parent
SPEC = {"name": "input", "layout": "NCHW", "channels": 3, "color": "RGB", "range": [-1, 1]}


# --------------------------------------------------------------------------- bundles and helpers


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    """A small fully convolutional net (no normalisation, so batching changes nothing) as a bundle."""
    root = tmp_path_factory.mktemp("serve_tiny")
    onnx = export_onnx(local_convnet(seed=4), root / "t.onnx")
    return make_bundle(root / "serve-tiny.advseg", {"fp32": onnx}, input_spec={**SPEC, "size_multiple": 2})


@pytest.fixture(scope="module")
def hint_bundle(tmp_path_factory) -> Path:
    """The same kind of net with 3 + 4 input channels: a bundle that takes colour hints."""
    from test_hints import local_hint_bundle

    return local_hint_bundle(tmp_path_factory.mktemp("serve_hints"), seed=5, name="serve-hints")


@pytest.fixture(scope="module")
def sketch(photo_paths) -> np.ndarray:
    return sketch_from_photo(photo_paths[0], long_side=96)


@pytest.fixture(scope="module")
def client(tiny_bundle: Path) -> Iterator[TestClient]:
    app = create_app(bundle=tiny_bundle, workers=1, max_batch=4, max_body=400_000, sketch_method="xdog")
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def hint_client(hint_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(bundle=hint_bundle, workers=1, sketch_method="xdog")) as c:
        yield c


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def post_image(c: Any, data: bytes, query: str = "", **form: Any) -> Any:
    files: dict[str, Any] = {"image": ("in.png", data, "image/png")}
    if "scribble" in form:
        files["scribble"] = ("scribble.png", form.pop("scribble"), "image/png")
    return c.post("/v1/colorize" + query, files=files, data=form or None)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header (valid CRC) claims ``width`` x ``height`` pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" ([0-9.e+-]+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def refused(r: Any, status: int, match: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and "\n" not in body["error"]
    assert re.search(match, body["error"]), body["error"]


# --------------------------------------------------------------------------- endpoints


def test_healthz_model_and_docs(client: TestClient):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["model"] == "serve-tiny" and h["queue_depth"] == 0
    m = client.get("/v1/model").json()
    assert m["name"] == "serve-tiny" and m["task"] == "sketch2color" and m["accepts_hints"] is False
    assert m["hints"] is None and m["input"]["size_multiple"] == 2 and m["limits"]["max_batch"] == 4
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert not re.search(r"https?://", docs.text), "the docs page must load nothing from elsewhere"
    for src in re.findall(r'(?:src|href)="([^"]+)"', docs.text):
        assert client.get(src).status_code == 200, src
    spec = client.get("/openapi.json").json()
    assert "/v1/colorize" in spec["paths"] and "multipart/form-data" in json.dumps(spec["paths"]["/v1/colorize"])


def test_page_loads_nothing_from_elsewhere(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text and "<canvas" in page.text
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert not re.search(r"(?:src|href|url|fetch)\W+https?://", text, re.I)
        assert not re.search(r"https?://", text)


def test_sketch_png_and_json_answers(client: TestClient, sketch: np.ndarray):
    data = png_bytes(sketch)
    r = post_image(client, data)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-advseg-batch-size"] == "1" and float(r.headers["x-advseg-run-ms"]) > 0
    color = decode_png(r.content)
    assert color.shape == (*sketch.shape, 3) and color.std() > 1
    # the bare image as the body, JSON asked for by Accept and by ?format=json
    r2 = client.post("/v1/colorize", content=data, headers={"content-type": "image/png", "accept": "application/json"})
    r3 = post_image(client, data, "?format=json")
    for r in (r2, r3):
        body = r.json()
        assert r.status_code == 200 and body["model"] == "serve-tiny" and body["sketch_png"] is None
        assert (body["width"], body["height"]) == (sketch.shape[1], sketch.shape[0]) and body["batch_size"] >= 1
        assert np.array_equal(decode_png(base64.b64decode(body["color_png"])), color)


def test_from_photo_sketches_a_real_photo_first(client: TestClient, photo_paths):
    im = Image.open(photo_paths[1]).convert("RGB")
    im.thumbnail((160, 160))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    r = client.post("/v1/colorize?from_photo=1&format=json", files={"image": ("p.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == im.size
    sketch = decode_png(base64.b64decode(body["sketch_png"]))
    assert sketch.shape[:2] == (im.size[1], im.size[0]) and sketch.min() < 128 < sketch.max()
    assert decode_png(base64.b64decode(body["color_png"])).shape == (im.size[1], im.size[0], 3)


def test_metrics_count_requests_latency_queue_and_errors(tiny_bundle: Path, sketch: np.ndarray):
    with TestClient(create_app(bundle=tiny_bundle)) as c:
        assert post_image(c, png_bytes(sketch)).status_code == 200
        assert c.post("/v1/colorize", content=b"hi", headers={"content-type": "text/plain"}).status_code == 415
        assert c.get("/healthz").status_code == 200
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        t = r.text
    assert metric(t, "advseg_requests_total", endpoint="/v1/colorize", status="200") == 1
    assert metric(t, "advseg_requests_total", endpoint="/v1/colorize", status="415") == 1
    assert metric(t, "advseg_requests_total", endpoint="/healthz", status="200") == 1
    assert metric(t, "advseg_errors_total", endpoint="/v1/colorize", reason="unsupported_media") == 1
    assert metric(t, "advseg_request_duration_seconds_count", endpoint="/v1/colorize") == 2
    assert metric(t, "advseg_request_duration_seconds_bucket", endpoint="/v1/colorize", le="+Inf") == 2
    assert "# TYPE advseg_request_duration_seconds histogram" in t
    assert "# TYPE advseg_queue_depth gauge" in t and metric(t, "advseg_queue_depth") == 0
    assert metric(t, "advseg_batch_size_count") == 1


# --------------------------------------------------------------------------- hints


def test_hints_change_the_colour_as_the_sdk_does(hint_client: TestClient, hint_bundle: Path, sketch: np.ndarray):
    from advseg_sdk.colorizer import Colorizer

    m = hint_client.get("/v1/model").json()
    assert m["accepts_hints"] is True and m["hints"]["channels"] == 4
    sdk = Colorizer(hint_bundle, precision="fp32")
    data = png_bytes(sketch)
    plain = decode_png(post_image(hint_client, data).content)
    h, w = sketch.shape
    r = post_image(hint_client, data, hints=json.dumps([{"x": 20, "y": 30, "color": "#ff0000"}]))
    assert r.status_code == 200, r.text
    hinted = decode_png(r.content)
    assert np.abs(hinted[25:36, 15:26].astype(int) - plain[25:36, 15:26]).max() > 0
    assert np.abs(hinted.astype(int) - sdk.colorize(sketch, hints=[(20, 30, "#ff0000")])).max() <= 1
    scribble = np.zeros((h, w, 4), np.uint8)
    scribble[28:33, 18:23] = (255, 0, 0, 255)
    r2 = post_image(hint_client, data, scribble=png_bytes(scribble, "RGBA"))
    assert r2.status_code == 200, r2.text
    scribbled = decode_png(r2.content)
    assert np.abs(scribbled.astype(int) - sdk.colorize(sketch, hints=scribble)).max() <= 1
    assert not np.array_equal(scribbled, plain)
    both = '[{"x": 60, "y": 10, "color": "#00ff00"}]'
    r3 = post_image(hint_client, data, hints=both, scribble=png_bytes(scribble, "RGBA"))
    assert r3.status_code == 200 and not np.array_equal(decode_png(r3.content), scribbled)
    assert np.array_equal(decode_png(post_image(hint_client, data, hints="[]").content), plain)  # no hints


def test_bad_hints_are_422_with_a_reason(hint_client: TestClient, sketch: np.ndarray):
    data = png_bytes(sketch)
    h, w = sketch.shape
    pt = lambda x, y, c="#ff0000": json.dumps([{"x": x, "y": y, "color": c}])
    refused(post_image(hint_client, data, hints="[{"), 422, r"'hints' is not JSON")
    refused(post_image(hint_client, data, hints='{"x": 1}'), 422, "must be a JSON list")
    refused(post_image(hint_client, data, hints='[{"x": 1, "y": 2}]'), 422, r"hints\[0\]")
    refused(post_image(hint_client, data, hints=pt(w, 3)), 422, rf"outside the {w}x{h} image")
    refused(post_image(hint_client, data, hints=pt(-1, 3)), 422, "outside")
    refused(post_image(hint_client, data, hints=pt(1, 1, "red")), 422, "is not #RRGGBB")
    wrong = np.zeros((h + 1, w, 4), np.uint8)
    refused(post_image(hint_client, data, scribble=png_bytes(wrong, "RGBA")), 422, rf"scribble is {w}x{h + 1}")
    rgb = np.zeros((h, w, 3), np.uint8)
    refused(post_image(hint_client, data, scribble=png_bytes(rgb)), 422, "no alpha channel")
    refused(post_image(hint_client, data, scribble=b"not a png"), 422, "cannot read the scribble")
    assert post_image(hint_client, data).status_code == 200  # still serving


def test_a_bundle_without_hints_refuses_them(client: TestClient, sketch: np.ndarray):
    r = post_image(client, png_bytes(sketch), hints='[{"x": 1, "y": 1, "color": "#ff0000"}]')
    refused(r, 422, "takes no colour hints")


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_4xx_with_a_one_line_reason(client: TestClient, sketch: np.ndarray):
    good = png_bytes(sketch)
    big = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    refused(post_image(client, png_bytes(big)), 413, "over the limit of 400000 bytes")
    bare = client.post("/v1/colorize", content=png_bytes(big), headers={"content-type": "image/png"})
    refused(bare, 413, "over the limit")
    refused(post_image(client, png_claiming(100_000, 100_000)), 413, "pixels|limit")
    refused(client.post("/v1/colorize", content=b"hello", headers={"content-type": "text/plain"}), 415, "text/plain")
    refused(post_image(client, b"just some text, not an image"), 415, "not an image")
    refused(post_image(client, good[: len(good) // 2]), 400, ".")  # truncated
    refused(client.post("/v1/colorize", content=b"", headers={"content-type": "image/png"}), 400, "no image")
    boundary = "multipart/form-data; boundary=xyz"
    refused(client.post("/v1/colorize", content=b"--xyz\r\nbroken", headers={"content-type": boundary}), 400, ".")
    refused(client.post("/v1/colorize", content=good, headers={"content-type": "multipart/form-data"}), 400, ".")
    refused(client.post("/v1/colorize", data={"image": "text"}), 415, "x-www-form-urlencoded")
    text_image = client.post("/v1/colorize", data={"image": "text"}, files={"hints": ("h.json", b"[]")})
    refused(text_image, 400, "must be a file upload")
    refused(client.post("/v1/colorize", files={"photo": ("x.png", good, "image/png")}), 400, "unknown form field")
    refused(client.post("/v1/colorize?format=gif", files={"image": ("x.png", good)}), 400, "png or json")
    refused(client.post("/v1/colorize?from_photo=maybe", files={"image": ("x.png", good)}), 400, "from_photo")
    refused(client.post("/v1/colorize", content=b"x", headers={"content-length": "zz"}), 400, "not a number")
    assert client.get("/nowhere").status_code == 404
    assert post_image(client, good).status_code == 200 and client.get("/healthz").json()["in_flight"] == 0


# --------------------------------------------------------------------------- queue, timeout, batching


class Gate:
    """Holds every batch a worker is about to run until ``open()`` (the Batcher's before_run hook):
    the worker is busy for as long as the test wants, the model still runs afterwards."""

    def __init__(self, app: Any):
        self.event = threading.Event()
        self.batcher = app.state.service.batcher
        self.batcher.before_run = lambda jobs: self.event.wait(30)

    def open(self) -> None:
        self.event.set()

    def wait(self, predicate: Callable[[Any], bool]) -> None:
        assert self.batcher.wait_until(predicate, 20), "the service did not reach the expected state"


def test_a_full_queue_answers_503_with_retry_after_and_recovers(tiny_bundle: Path, sketch: np.ndarray):
    app = create_app(bundle=tiny_bundle, workers=1, max_batch=1, max_queue=1, batch_wait_ms=0)
    gate = Gate(app)
    data = png_bytes(sketch)
    with serve_in_thread(app) as url, ThreadPoolExecutor(4) as pool, httpx.Client(base_url=url, timeout=30) as c:
        running = pool.submit(post_image, c, data)
        gate.wait(lambda b: b.running() == 1)
        queued = pool.submit(post_image, c, data)
        gate.wait(lambda b: b.depth() == 1)
        t0 = time.monotonic()
        r = post_image(c, data)
        refused(r, 503, "at capacity")
        assert r.headers["retry-after"] == "1" and time.monotonic() - t0 < 5
        gate.open()
        assert running.result(30).status_code == 200 and queued.result(30).status_code == 200
        assert post_image(c, data).status_code == 200  # recovered
        t = c.get("/metrics").text
    assert metric(t, "advseg_errors_total", endpoint="/v1/colorize", reason="queue_full") == 1
    assert metric(t, "advseg_requests_total", endpoint="/v1/colorize", status="503") == 1


def test_a_request_past_its_timeout_gets_504(tiny_bundle: Path, sketch: np.ndarray):
    app = create_app(bundle=tiny_bundle, workers=1, timeout=0.3)
    gate = Gate(app)
    with TestClient(app) as c:
        t0 = time.monotonic()
        refused(post_image(c, png_bytes(sketch)), 504, "timeout of 0.3 s")
        assert time.monotonic() - t0 < 10
        gate.open()
        gate.wait(lambda b: b.running() == 0 and b.depth() == 0)
        assert post_image(c, png_bytes(sketch)).status_code == 200
        t = c.get("/metrics").text
    assert metric(t, "advseg_errors_total", endpoint="/v1/colorize", reason="timeout") == 1


def test_same_shape_requests_share_a_network_call_and_get_their_own_answer(tiny_bundle: Path, photo_paths):
    sketches = [sketch_from_photo(p, long_side=96) for p in photo_paths[:4]]
    shape = sketches[0].shape
    sketches = [np.ascontiguousarray(np.resize(s, shape)) for s in sketches]  # one shape, four drawings
    with TestClient(create_app(bundle=tiny_bundle, workers=1, max_batch=1)) as c:
        solo = [decode_png(post_image(c, png_bytes(s)).content) for s in sketches]  # before: batches of 1
    app = create_app(bundle=tiny_bundle, workers=1, max_batch=8, batch_wait_ms=1000)
    gate = Gate(app)
    with serve_in_thread(app) as url, ThreadPoolExecutor(4) as pool, httpx.Client(base_url=url, timeout=30) as c:
        first = pool.submit(post_image, c, png_bytes(sketches[0]))
        gate.wait(lambda b: b.running() == 1)
        rest = [pool.submit(post_image, c, png_bytes(s)) for s in sketches[1:]]
        gate.wait(lambda b: b.depth() == 3)
        gate.open()
        answers = [first.result(30)] + [f.result(30) for f in rest]
        t = c.get("/metrics").text
    assert [r.status_code for r in answers] == [200] * 4
    assert [r.headers["x-advseg-batch-size"] for r in answers] == ["1", "3", "3", "3"]
    for r, want in zip(answers, solo):
        assert np.abs(decode_png(r.content).astype(int) - want).max() <= 1
    assert metric(t, "advseg_batch_size_count") == 2 and metric(t, "advseg_batch_size_sum") == 4


def test_a_client_that_disconnects_is_dropped_and_the_service_goes_on(tiny_bundle: Path, sketch: np.ndarray):
    app = create_app(bundle=tiny_bundle, workers=1, max_batch=1)
    gate = Gate(app)
    data = png_bytes(sketch)
    with serve_in_thread(app) as url, ThreadPoolExecutor(2) as pool, httpx.Client(base_url=url, timeout=30) as c:
        busy = pool.submit(post_image, c, data)
        gate.wait(lambda b: b.running() == 1)
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:  # a raw request, then hang up
            s.sendall(
                f"POST /v1/colorize HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            gate.wait(lambda b: b.depth() == 1)
        gate.wait(lambda b: b.depth() == 0)  # its job left the queue when the client went
        with socket.create_connection((host, int(port)), timeout=10) as s:  # and one gone halfway through its body
            s.sendall(
                f"POST /v1/colorize HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data[: len(data) // 2]
            )
        gate.open()
        assert busy.result(30).status_code == 200
        assert post_image(c, data).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            t = c.get("/metrics").text
            if metric(t, "advseg_errors_total", endpoint="/v1/colorize", reason="client_disconnected") >= 2:
                break
            time.sleep(0.05)
        assert c.get("/healthz").json()["in_flight"] == 0
    assert metric(t, "advseg_errors_total", endpoint="/v1/colorize", reason="client_disconnected") == 2
    assert metric(t, "advseg_errors_total", endpoint="/v1/colorize", reason="internal") == 0
    assert metric(t, "advseg_batch_size_count") == 2  # the dropped job never ran


# --------------------------------------------------------------------------- the embedded default, the CLI


@pytest.mark.real_assets
def test_the_embedded_default_bundle_colours_a_real_photo(photo_paths):
    with TestClient(create_app(workers=1)) as c:
        m = c.get("/v1/model").json()
        assert m["task"] == "sketch2color" and isinstance(m["accepts_hints"], bool)
        data = photo_paths[0].read_bytes()
        form = {"hints": json.dumps([{"x": 10, "y": 10, "color": "#2060c0"}])}
        files = {"image": ("p.jpg", data, "image/jpeg")}
        r = c.post("/v1/colorize?from_photo=1&format=json", files=files, data=form if m["accepts_hints"] else None)
        assert r.status_code == 200, r.text
        body = r.json()
        w, h = Image.open(photo_paths[0]).size
        color = decode_png(base64.b64decode(body["color_png"]))
        assert (body["width"], body["height"]) == (w, h) and color.shape == (h, w, 3)
        assert color.reshape(-1, 3).std(axis=0).max() > 5  # not one flat colour
        if not m["accepts_hints"]:
            r = c.post("/v1/colorize", files={"image": ("p.jpg", data, "image/jpeg")}, data=form)
            refused(r, 422, "takes no colour hints")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_advseg_serve_runs_from_the_command_line(tmp_path: Path):
    port = _free_port()
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [str(BIN / "advseg"), "serve", "--port", str(port), "--workers", "1", "--max-queue", "4"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, log.seek(0) or log.read()
        assert health.json()["status"] == "ok"
        limits = httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=5).json()["limits"]
        assert limits["max_queue"] == 4 and limits["workers"] == 1
    finally:
        proc.terminate()
        rc = proc.wait(30)
    log.seek(0)
    out = log.read()
    assert rc in (0, -15), out  # uvicorn re-raises the SIGTERM it handled, after a clean shutdown
    assert "Application shutdown complete" in out
    assert f"http://127.0.0.1:{port}" in out


def test_serve_flags_are_checked_before_anything_loads():
    r = subprocess.run([str(BIN / "advseg"), "serve", "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--workers" in r.stderr
    r = subprocess.run(
        [str(BIN / "advseg"), "serve", "--bundle", "/nonexistent.advseg", "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "nonexistent" in r.stderr


def test_the_sdk_and_the_serve_package_import_no_web_stack():
    code = (
        "import sys, advseg_sdk, advseg_sdk.serve, advseg_sdk.serve.options, advseg_sdk.cli; "
        "web = ('fastapi', 'uvicorn', 'starlette', 'prometheus_client', 'torch'); "
        "print(sorted(m for m in web if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_the_page_files_are_package_data(repo_dir: Path):
    """A wheel (not only an editable install) carries static/: pyproject's package-data names it."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib", reason="tomllib: Python 3.11+")
    patterns = tomllib.loads((repo_dir / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    static = repo_dir / "advseg_sdk" / "serve" / "static"
    files = [p.relative_to(repo_dir / "advseg_sdk").as_posix() for p in static.iterdir()]
    assert {"serve/static/index.html", "serve/static/app.js", "serve/static/style.css"} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, pat) for pat in patterns["advseg_sdk"]), f
