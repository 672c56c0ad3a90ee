"""`advseg serve`: the SDK behind an HTTP service with dynamic batching, and a web page.

>>> from advseg_sdk.serve import ServeOptions, create_app
>>> app = create_app(ServeOptions(workers=1, max_batch=8))      # an ASGI app (FastAPI)

- :mod:`~advseg_sdk.serve.options`: :class:`ServeOptions`, the settings (no web imports).
- :mod:`~advseg_sdk.serve.batching`: a bounded queue and worker threads, each with its own
  :class:`~advseg_sdk.colorizer.Pipeline` (one ONNX Runtime session per worker); requests whose
  network inputs have one shape share a network call.
- :mod:`~advseg_sdk.serve.metrics`: Prometheus metrics (``GET /metrics``).
- :mod:`~advseg_sdk.serve.requests`: reading and checking uploads (size, pixels, hints).
- :mod:`~advseg_sdk.serve.app`: the FastAPI application and :func:`run_server`.
- ``static/``: the page served at ``/`` (plain HTML, JS and CSS; nothing loads from elsewhere).

Needs the ``serve`` extra (``pip install -e ".[serve]"``: FastAPI, uvicorn, python-multipart,
prometheus-client, fastapi-offline). Importing this package imports none of them: the names
below load on first use, and ``import advseg_sdk`` never loads this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

__all__ = ["ServeOptions", "create_app", "run_server"]

_EXPORTS = {
    "ServeOptions": "advseg_sdk.serve.options",
    "create_app": "advseg_sdk.serve.app",
    "run_server": "advseg_sdk.serve.app",
}

if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app, run_server
    from .options import ServeOptions

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
