"""`ServeOptions`: every setting of `advseg serve`, in one dataclass (no web imports here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServeOptions", "SKETCH_CHOICES", "DEFAULT_MAX_BODY", "DEFAULT_MAX_PIXELS"]

#: ``auto``: HED when an HED bundle is there (``--sketch-bundle`` or the default one), else XDoG.
SKETCH_CHOICES = ("auto", "hed", "xdog", "canny")
#: Largest request body read (bytes); a larger one is refused with 413 before anything is decoded.
DEFAULT_MAX_BODY = 25 * 1024 * 1024
#: Largest image (width x height) decoded; checked from the header (decompression bombs: 413).
DEFAULT_MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class ServeOptions:
    """How the service runs (the flags of `advseg serve`).

    ``workers`` threads each hold one model (one ONNX Runtime session with ``threads`` intra-op
    threads; ``None``: the CPUs shared out among the workers). A worker takes the oldest waiting
    request and, for up to ``batch_wait_ms``, gathers up to ``max_batch`` requests whose network
    input has the same shape into one call. At most ``max_queue`` requests wait; past that (or
    past ``max_queue + workers * max_batch`` requests in the service) a request is answered 503
    with ``Retry-After`` at once. A request not answered within ``timeout`` seconds gets 504.
    """

    bundle: Path | None = None  # sketch2color bundle; None: the default (embedded) one
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = 8
    max_queue: int = 64
    timeout: float = 30.0
    batch_wait_ms: float = 5.0
    max_body: int = DEFAULT_MAX_BODY
    max_pixels: int = DEFAULT_MAX_PIXELS
    precision: str = "auto"
    threads: int | None = None  # ONNX Runtime intra-op threads per worker
    sketch_method: str = "auto"  # how ?from_photo=1 photos become sketches
    sketch_bundle: Path | None = None  # HED bundle for sketch_method hed/auto
    providers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("workers", "max_batch", "max_queue", "max_body", "max_pixels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (0 < self.timeout <= 3600):
            raise ValueError(f"timeout must be in (0, 3600] seconds, got {self.timeout!r}")
        if not (0 <= self.batch_wait_ms <= 1000):
            raise ValueError(f"batch_wait_ms must be in [0, 1000], got {self.batch_wait_ms!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")
        if self.sketch_method not in SKETCH_CHOICES:
            raise ValueError(f"sketch_method must be one of {', '.join(SKETCH_CHOICES)}, got {self.sketch_method!r}")
        if not (0 <= self.port <= 65535):
            raise ValueError(f"port must be 0-65535, got {self.port!r}")

    @property
    def capacity(self) -> int:
        """Requests the service holds at once (waiting, being prepared or running)."""
        return self.max_queue + self.workers * self.max_batch

    def session_threads(self) -> int:
        """Intra-op threads for each worker's ONNX Runtime session."""
        if self.threads is not None:
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.workers)
