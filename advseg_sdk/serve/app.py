"""The FastAPI application of `advseg serve`.

Endpoints:

- ``POST /v1/colorize``: a sketch (multipart field ``image``, or the image bytes as the body) ->
  its colour image; ``?from_photo=1``: a photo, sketched first (:class:`~advseg_sdk.colorizer.Pipeline`).
  Optional colour hints (bundles that take them): form field ``hints`` (JSON list of
  ``{"x", "y", "color": "#rrggbb"}`` in the image's pixels) and/or ``scribble`` (an RGBA PNG of
  the image's size). The answer is a PNG, or JSON with base64 PNGs (``?format=json`` or
  ``Accept: application/json``).
- ``GET /healthz``, ``GET /v1/model`` (the bundle's summary), ``GET /metrics`` (Prometheus),
  ``GET /`` (the web page), ``GET /docs`` (OpenAPI, served offline when fastapi-offline is there).

Refusals are JSON ``{"error": "<one line>", "status": N}``: 413 body or pixels over the limit,
415 not an accepted type or not an image, 400 broken image or form, 422 bad hints (or hints for a
bundle that takes none), 503 queue full (``Retry-After``), 504 timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..hints import HintError
from ..options import with_overrides
from .batching import Batcher, Job, JobResult, QueueFull, job_key, load_pipeline
from .metrics import CONTENT_TYPE, Metrics, endpoint_label
from .options import ServeOptions
from .requests import (
    ApiError,
    decode_scribble,
    decode_upload,
    hint_error,
    parse_hints_field,
    parse_upload,
    read_body,
)

__all__ = ["create_app", "run_server", "serve_in_thread", "Service", "model_summary"]

STATIC = Path(__file__).resolve().parent / "static"
_COLORIZE_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "sketch (or photo)"},
                        "hints": {
                            "type": "string",
                            "description": 'JSON list of {"x": X, "y": Y, "color": "#rrggbb"} in image pixels',
                        },
                        "scribble": {
                            "type": "string",
                            "format": "binary",
                            "description": "RGBA PNG of the image's size: alpha > 127 = hinted pixel, RGB its colour",
                        },
                    },
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "responses": {
        "200": {
            "description": "the colour image (PNG), or JSON with base64 PNGs",
            "content": {"image/png": {}, "application/json": {}},
        },
        "400": {"description": "broken image or form"},
        "413": {"description": "body or image over the limit"},
        "415": {"description": "not an accepted content type, or not an image"},
        "422": {"description": "bad hints, or hints for a bundle that takes none"},
        "503": {"description": "queue full (Retry-After)"},
        "504": {"description": "not answered within the timeout"},
    },
}


def model_summary(pipeline: Any, options: ServeOptions) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: the bundle's manifest summary and how the service runs it."""
    col = pipeline.colorizer
    b, spec = col.bundle, col.spec
    hints = getattr(col, "accepts_hints", False)
    return {
        "name": b.name,
        "task": b.task,
        "arch": b.arch_name,
        "arch_args": {k: v for k, v in (b.architecture.get("args") or {}).items() if k != "arch"},
        "precisions": b.available(),
        "runner": col.runner.label,
        "input": {
            "channels": spec.channels,
            "color": spec.color,
            "range": list(spec.range),
            "size_multiple": spec.size_multiple,
            "min_size": spec.min_size,
            "fixed_size": list(spec.fixed_size) if spec.fixed_size else None,
            "photo_short_side": spec.photo_short_side,
        },
        "accepts_hints": bool(hints),
        "hints": spec.hints.to_dict() if hints and spec.hints is not None else None,
        "photo_sketch": pipeline.sketcher.method,
        "limits": {
            "max_body_bytes": options.max_body,
            "max_pixels": options.max_pixels,
            "max_batch": options.max_batch,
            "max_queue": options.max_queue,
            "timeout_s": options.timeout,
            "workers": options.workers,
        },
    }


class Service:
    """The models, the batcher and the metrics behind one app."""

    def __init__(self, options: ServeOptions):
        self.options = options
        self.models = [load_pipeline(options) for _ in range(options.workers)]
        self.front = self.models[0]  # read-only checks in the request path (sizes, hints)
        self.metrics = Metrics(queue_depth=lambda: self.batcher.depth(), jobs_running=lambda: self.batcher.running())
        self.batcher = Batcher(
            self.models,
            max_batch=options.max_batch,
            max_queue=options.max_queue,
            max_wait=options.batch_wait_ms / 1000.0,
            on_batch=self.metrics.observe_batch,
            arriving=lambda: self.in_flight,
        )
        self.in_flight = 0  # colour requests between admission and answer (event loop only)
        self.summary = model_summary(self.front, options)

    @property
    def accepts_hints(self) -> bool:
        return bool(getattr(self.front.colorizer, "accepts_hints", False))

    def prepare(self, data: bytes, hints_text: str | None, scribble: bytes | None, from_photo: bool) -> Job:
        """Decode and check one request (runs in a thread): the image, its hints, its batch key."""
        kind = "photo" if from_photo else "sketch"
        image = decode_upload(data, kind, self.options.max_pixels)
        hints: Any = None
        points = parse_hints_field(hints_text) if hints_text is not None else []
        if points or scribble is not None:  # an empty list is no hints
            if not self.accepts_hints:
                raise ApiError(
                    422,
                    f"model {self.summary['name']!r} takes no colour hints (GET /v1/model: accepts_hints false); "
                    "send the image without 'hints' and 'scribble'",
                    "hints_not_supported",
                )
            rgba = decode_scribble(scribble, self.options.max_pixels) if scribble is not None else None
            hints = _combine_hints(points, rgba, image.shape[:2])
        hint_set = None
        if hints is not None:
            try:
                hint_set = self.front.colorizer.hint_sets([image], [hints])[0]
            except HintError as exc:
                raise hint_error(exc) from None
        return Job(
            image=image, key=job_key(self.front, image.shape[:2], from_photo), from_photo=from_photo, hints=hint_set
        )

    def close(self) -> None:
        self.batcher.close()


def _combine_hints(points: list[Any], rgba: np.ndarray | None, hw: tuple[int, int]) -> Any:
    """Points and/or a scribble as one hint entry for :meth:`Colorizer.hint_sets` (both: one
    :class:`~advseg_sdk.hints.HintSet` holding the two)."""
    if rgba is None:
        return points or None
    if not points:
        return rgba
    from ..hints import HintSet, parse_hints

    try:
        pts, scr = parse_hints(points, hw), parse_hints(rgba, hw)
    except HintError as exc:
        raise hint_error(exc) from None
    assert pts is not None and scr is not None
    return HintSet(tuple(hw), points=pts.points, scribble=scr.scribble)  # type: ignore[arg-type]


def _png(rgb: np.ndarray) -> bytes:
    arr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _wants_json(fmt: str | None, accept: str) -> bool:
    if fmt is not None:
        f = fmt.lower()
        if f not in ("png", "json"):
            raise ApiError(400, f"format={fmt!r}: choose png or json", "bad_request")
        return f == "json"
    accept = accept.lower()
    return "application/json" in accept and "image/png" not in accept


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": " ".join(str(message).split()), "status": status}, status_code=status, headers=headers
    )


class _MetricsMiddleware:
    """Counts and times every HTTP request by route and status (pure ASGI, so it does not get in
    the way of disconnect detection)."""

    def __init__(self, app: Any, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.service.metrics.observe_request(
                endpoint_label(scope.get("path", "")), status["code"], time.perf_counter() - start
            )


async def _wait_disconnect(receive: Any) -> None:
    """Return when the client has gone (the body is read already, so only a disconnect comes)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def create_app(options: ServeOptions | None = None, **overrides: Any) -> FastAPI:
    """The service as an ASGI app: loads ``options.workers`` models and starts the workers now;
    they stop when the app's lifespan ends (or on ``app.state.service.close()``)."""
    opts = with_overrides(ServeOptions, options, overrides)
    service = Service(opts)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="advseg",
        summary="Sketch and photo colorization (advseg SDK on ONNX Runtime)",
        version=_version(),
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(_MetricsMiddleware, service=service)
    _add_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        service.metrics.observe_error(endpoint_label(request.url.path), exc.reason)
        return _error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        service.metrics.observe_error(endpoint_label(request.url.path), "bad_request")
        return _error_response(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        service.metrics.observe_error(endpoint_label(request.url.path), "internal")
        return _error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": service.summary["name"],
            "workers": opts.workers,
            "queue_depth": service.batcher.depth(),
            "running": service.batcher.running(),
            "in_flight": service.in_flight,
        }

    @app.get("/v1/model", summary="The bundle's manifest summary")
    async def model() -> dict[str, Any]:
        return service.summary

    @app.get("/metrics", summary="Prometheus metrics (text exposition format)")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/v1/colorize", summary="Colour a sketch (or a photo, ?from_photo=1)", openapi_extra=_COLORIZE_DOC)
    async def colorize(
        request: Request,
        from_photo: bool = Query(False, description="the image is a photo: sketch it first"),
        format: str | None = Query(None, description="png (default) or json (base64 PNGs)"),
    ) -> Response:
        start = time.monotonic()
        as_json = _wants_json(format, request.headers.get("accept", ""))
        body = await read_body(request, opts.max_body)
        if service.in_flight >= opts.capacity or service.batcher.depth() >= opts.max_queue:
            raise _busy(service)
        service.metrics.in_flight.inc()
        service.in_flight += 1
        try:
            upload = await parse_upload(request.headers.get("content-type", ""), request.headers, body)
            del body
            job = await run_in_threadpool(service.prepare, upload.image, upload.hints, upload.scribble, from_photo)
            try:
                future = service.batcher.submit(job)
            except QueueFull:
                raise _busy(service) from None
            result = await _await_job(request, service, job, future, opts.timeout - (time.monotonic() - start))
            if result is None:  # the client went away: nobody to answer
                return Response(status_code=499)
            return await run_in_threadpool(_answer, result, as_json, service.summary["name"])
        finally:
            service.in_flight -= 1
            service.metrics.in_flight.dec()

    return app


def _busy(service: Service) -> ApiError:
    o = service.options
    return ApiError(
        503,
        f"the service is at capacity ({service.batcher.depth()} waiting, --max-queue {o.max_queue}); retry shortly",
        "queue_full",
        {"Retry-After": "1"},
    )


async def _await_job(request: Request, service: Service, job: Job, future: Any, left: float) -> JobResult | None:
    """The job's result; 504 past the deadline; None when the client disconnects first (the job is
    dropped if no worker has it yet)."""
    result_f = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_wait_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({result_f, gone}, timeout=max(0.0, left), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if result_f in done:
        try:
            return result_f.result()
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(500, f"colouring failed: {type(exc).__name__}: {exc}", "internal") from None
    service.batcher.cancel(job)
    result_f.cancel()
    if gone in done:
        service.metrics.observe_error("/v1/colorize", "client_disconnected")
        return None
    raise ApiError(504, f"not answered within the timeout of {service.options.timeout:g} s", "timeout")


def _answer(result: JobResult, as_json: bool, model: str) -> Response:
    color = _png(result.color)
    headers = {
        "X-Advseg-Batch-Size": str(result.batch),
        "X-Advseg-Queue-Ms": f"{result.queued_s * 1000:.1f}",
        "X-Advseg-Run-Ms": f"{result.run_s * 1000:.1f}",
    }
    if not as_json:
        return Response(color, media_type="image/png", headers=headers)
    h, w = result.color.shape[:2]
    payload = {
        "model": model,
        "width": w,
        "height": h,
        "color_png": base64.b64encode(color).decode("ascii"),
        "sketch_png": None if result.sketch is None else base64.b64encode(_png(result.sketch)).decode("ascii"),
        "batch_size": result.batch,
        "queue_ms": round(result.queued_s * 1000, 1),
        "run_ms": round(result.run_s * 1000, 1),
    }
    return JSONResponse(payload, headers=headers)


def _add_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI from fastapi-offline's files (no CDN); skipped without it."""
    try:
        import fastapi_offline
    except ImportError:
        return
    from fastapi.openapi.docs import get_swagger_ui_html

    files = Path(fastapi_offline.__file__).resolve().parent / "static"
    app.mount("/docs/static", StaticFiles(directory=files), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="advseg - API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
        )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("advseg")
    except Exception:
        return "0"


def run_server(options: ServeOptions | None = None, **overrides: Any) -> None:
    """Serve ``options`` with uvicorn until interrupted (what `advseg serve` runs)."""
    import uvicorn

    opts = with_overrides(ServeOptions, options, overrides)
    app = create_app(opts)
    uvicorn.run(app, host=opts.host, port=opts.port, log_level="info", access_log=False, timeout_graceful_shutdown=5)


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields its base URL (``port=0``: a free
    port), stops it on exit. For tests and benchmarks on the loopback interface."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="advseg-serve-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("the test server did not start within 30 s")
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
