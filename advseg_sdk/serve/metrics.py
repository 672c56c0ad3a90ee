"""Prometheus metrics of the service (``GET /metrics``, the text exposition format).

One :class:`Metrics` per app, on its own registry (two apps in one process never share counts):

- ``advseg_requests_total{endpoint, status}``: requests answered, by route and HTTP status;
- ``advseg_request_duration_seconds{endpoint}``: latency histogram, request start to response;
- ``advseg_errors_total{endpoint, reason}``: refused or failed requests by reason
  (``body_too_large``, ``too_many_pixels``, ``unsupported_media``, ``bad_image``, ``bad_request``,
  ``bad_hints``, ``queue_full``, ``timeout``, ``client_disconnected``, ``internal``, ...);
- ``advseg_queue_depth``: jobs waiting for a worker (a gauge read at scrape time);
- ``advseg_jobs_running`` and ``advseg_requests_in_flight``: jobs in the workers, requests in the app;
- ``advseg_batch_size``: jobs per network call (histogram) and ``advseg_batch_seconds``: its time.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["Metrics", "CONTENT_TYPE", "endpoint_label"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
_ENDPOINTS = ("/v1/colorize", "/v1/model", "/healthz", "/metrics", "/docs", "/openapi.json", "/")


def endpoint_label(path: str) -> str:
    """A bounded label for a request path: the route, ``/static`` for page files, else ``other``
    (so unknown paths cannot grow the metric's label set)."""
    if path in _ENDPOINTS:
        return path
    if path.startswith("/static/"):
        return "/static"
    if path.startswith("/docs/"):
        return "/docs"
    return "other"


class Metrics:
    """The service's metrics on a registry of their own; ``render()`` gives the exposition text."""

    def __init__(self, queue_depth: Callable[[], float], jobs_running: Callable[[], float]):
        disable_created_metrics()  # no *_created series: one sample per counter and bucket
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("advseg_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "advseg_request_duration_seconds",
            "Time from request start to response",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "advseg_errors", "Refused or failed requests by reason", ["endpoint", "reason"], registry=r
        )
        self.queue = Gauge("advseg_queue_depth", "Jobs waiting for a worker", registry=r)
        self.queue.set_function(queue_depth)
        self.running = Gauge("advseg_jobs_running", "Jobs a worker is running", registry=r)
        self.running.set_function(jobs_running)
        self.in_flight = Gauge("advseg_requests_in_flight", "Colour requests inside the service", registry=r)
        self.batch_size = Histogram("advseg_batch_size", "Jobs per network call", buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram(
            "advseg_batch_seconds",
            "Time of one batch (network call and its pre/post-processing)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_error(self, endpoint: str, reason: str) -> None:
        self.errors.labels(endpoint, reason).inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
