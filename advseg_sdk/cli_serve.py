"""`advseg serve`: the colour service over HTTP, with its web page (needs the ``serve`` extra).

The web stack (FastAPI, uvicorn) is imported only when the command runs, so ``advseg`` and the
SDK load without it.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import cli_options as opt

__all__ = ["serve"]

_BUNDLE_HELP = "sketch2color bundle (.advseg dir or .zip); default: the embedded demo-sketch2color model."
_WORKERS_HELP = "Worker threads, each with its own model (ONNX Runtime session)."
_BATCH_HELP = "Most requests of one network input shape colored in one network call."
_QUEUE_HELP = "Most requests waiting for a worker; past it a request gets 503 with Retry-After at once."
_WAIT_HELP = "How long a worker waits to fill a batch, in milliseconds (bounded; 0: no wait)."
_SKETCH_HELP = "How ?from_photo=1 photos become sketches; auto: HED if an HED bundle is there, else XDoG."


@click.command("serve")
@opt.optional_path("--bundle", _BUNDLE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@opt.number("--port", click.IntRange(0, 65535), 8000, "TCP port (0: any free port).")
@opt.number("--workers", click.IntRange(min=1), 1, _WORKERS_HELP)
@opt.number("--max-batch", click.IntRange(min=1), 8, _BATCH_HELP)
@opt.number("--max-queue", click.IntRange(min=1), 64, _QUEUE_HELP)
@opt.number("--timeout", click.FloatRange(min=0.001, max=3600), 30.0, "Seconds before a request is answered 504.")
@opt.number("--batch-wait-ms", click.FloatRange(0, 1000), 5.0, _WAIT_HELP)
@opt.number("--max-body-mb", click.FloatRange(min=0.001), 25.0, "Largest request body, in MiB (413 past it).")
@opt.number("--max-pixels", click.IntRange(min=1), 4096 * 4096, "Largest image, width x height (413 past it).")
@opt.choice("--precision", ("auto", "fp32", "fp16", "bf16", "int8", "trt"), "auto", "Bundle artefact to run.")
@opt.number("--threads", click.IntRange(min=1), None, "ONNX Runtime threads per worker (default: CPUs / workers).")
@opt.choice("--sketch-method", ("auto", "hed", "xdog", "canny"), "auto", _SKETCH_HELP)
@opt.optional_path("--sketch-bundle", "HED bundle for --sketch-method hed/auto.")
@opt.text("--providers", "Comma-separated ONNX Runtime providers in order.", metavar="LIST")
def serve(**cli: Any) -> None:
    """Serve colorization over HTTP: POST /v1/colorize, GET /healthz, /v1/model, /metrics, and a page at /."""
    try:
        from .serve.app import run_server
        from .serve.options import ServeOptions
    except ImportError as exc:
        click.echo(f'error: advseg serve needs the serve extra (pip install -e ".[serve]"): {exc}', err=True)
        sys.exit(1)
    providers = cli.pop("providers")
    max_body = max(1, int(cli.pop("max_body_mb") * 1024 * 1024))
    try:
        options = ServeOptions(
            max_body=max_body,
            providers=tuple(p.strip() for p in providers.split(",") if p.strip()) if providers else None,
            **cli,
        )
        run_server(options)
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
