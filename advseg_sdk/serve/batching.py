"""Dynamic batching: a bounded queue of colour jobs served by worker threads.

Each worker thread holds its own :class:`~advseg_sdk.colorizer.Pipeline` (so one ONNX Runtime
session per worker; ONNX Runtime releases the GIL while it runs). A worker takes the oldest
waiting job and gathers, for at most ``max_wait`` seconds and up to ``max_batch`` jobs, the waiting
jobs with the same :attr:`Job.key` (the network input's shape): they run in one network call.
Images that run tiled, or that a fixed-size network resizes, keep their own key and run alone.

Everything before and after the network is the SDK's own code: :meth:`Colorizer._fit`,
``_run_net``, ``_restore``, ``_to_uint8`` (as :meth:`Colorizer.colorize_arrays` uses them) and the
photo steps of :meth:`Pipeline.run`. The queue is bounded: :meth:`Batcher.submit` raises
:class:`QueueFull` instead of letting a backlog grow.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..colorizer import Colorizer, Pipeline
from ..hints import HintSet

__all__ = ["Job", "JobResult", "QueueFull", "Batcher", "job_key", "run_jobs", "resolve_sketch_method", "load_pipeline"]

_solo = itertools.count()


class QueueFull(RuntimeError):
    """The queue holds ``max_queue`` jobs already; the caller should answer 503."""


class JobResult(NamedTuple):
    """What a job produced: the colour image (uint8 RGB, the input's size), the sketch for a photo
    job (uint8 (H, W)), the number of jobs that shared its network call, and seconds spent waiting
    in the queue and running."""

    color: np.ndarray
    sketch: np.ndarray | None
    batch: int
    queued_s: float
    run_s: float


@dataclass(eq=False)
class Job:
    """One image to colour: a sketch, or a photo (``from_photo``) to sketch first, each uint8 RGB;
    ``hints`` already checked against its size (in the photo's pixels for a photo)."""

    image: np.ndarray
    key: Hashable
    from_photo: bool = False
    hints: HintSet | None = None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    enqueued: float = 0.0


def resolve_sketch_method(method: str, sketch_bundle: Any = None) -> str:
    """``auto`` -> ``hed`` when an HED bundle is there (``sketch_bundle`` or the default), else ``xdog``."""
    if method != "auto":
        return method
    from ..bundle import default_bundle_path

    if sketch_bundle is not None or (default_bundle_path("hed") / "manifest.json").is_file():
        return "hed"
    return "xdog"


def load_pipeline(options: Any) -> Pipeline:
    """A worker's model: :class:`Pipeline` (its ``colorizer`` serves sketches) for ``options``
    (:class:`~advseg_sdk.serve.options.ServeOptions`), with its share of the CPU threads."""
    method = resolve_sketch_method(options.sketch_method, options.sketch_bundle)
    return Pipeline(
        options.bundle,
        sketch=method,
        sketch_bundle=options.sketch_bundle if method == "hed" else None,
        providers=list(options.providers) if options.providers else None,
        precision=options.precision,
        max_batch=options.max_batch,
        intra_op_threads=options.session_threads(),
    )


def job_key(pipeline: Pipeline, hw: tuple[int, int], from_photo: bool) -> Hashable:
    """The batching key of an image of size ``hw``: the shape of its network input, or a key of its
    own when it runs tiled or resized to a fixed-size network (those run alone)."""
    col = pipeline.colorizer
    h, w = pipeline.work_size(hw) if from_photo else hw
    if not col.fully_convolutional or col.tile_plan(h, w):
        return ("solo", next(_solo))
    return ("net", *col._padded_size(h, w))


class Batcher:
    """Worker threads over one bounded queue (see the module docstring).

    ``models`` are the workers' pipelines (one thread each). ``on_batch(size, seconds)`` is told
    of every network call; ``before_run(jobs)``, if set, is called by the worker before it runs a
    batch (tests hold a lock there to keep a worker busy). ``arriving()``, if given, counts the
    requests inside the service (admitted, not yet answered): a worker waits for a fuller batch
    only while some of them are not queued or running yet (being read or decoded), so a lone
    request never waits ``max_wait`` for company that is not coming.
    """

    def __init__(
        self,
        models: list[Pipeline],
        max_batch: int = 8,
        max_queue: int = 64,
        max_wait: float = 0.005,
        on_batch: Callable[[int, float], None] | None = None,
        arriving: Callable[[], int] | None = None,
    ):
        if not models:
            raise ValueError("a Batcher needs at least one worker model")
        self.models = models
        self.max_batch = max(1, int(max_batch))
        self.max_queue = max(1, int(max_queue))
        self.max_wait = max(0.0, float(max_wait))
        self.on_batch = on_batch
        self.arriving = arriving
        self.before_run: Callable[[list[Job]], None] | None = None
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._running = 0  # jobs being run by workers
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, args=(m,), name=f"advseg-serve-worker-{i}", daemon=True)
            for i, m in enumerate(models)
        ]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ callers
    def depth(self) -> int:
        """Jobs waiting for a worker."""
        return len(self._pending)

    def running(self) -> int:
        """Jobs a worker is running now."""
        return self._running

    def submit(self, job: Job) -> concurrent.futures.Future:
        """Queue ``job``; its future gets a :class:`JobResult` (or the exception its run raised).
        Raises :class:`QueueFull` when ``max_queue`` jobs are waiting, ``RuntimeError`` after close."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the service is shutting down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} requests are waiting (--max-queue {self.max_queue})")
            job.enqueued = time.monotonic()
            self._pending.append(job)
            self._cond.notify_all()
        return job.future

    def cancel(self, job: Job) -> bool:
        """Drop ``job`` if no worker has taken it yet (a timed-out or disconnected request)."""
        with self._cond:
            try:
                self._pending.remove(job)
            except ValueError:
                return False
            self._cond.notify_all()
        job.future.cancel()
        return True

    def wait_until(self, predicate: Callable[[Batcher], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked whenever the queue changes) or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers after their current batch; waiting jobs fail with ``RuntimeError``."""
        with self._cond:
            self._closed = True
            left = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in left:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("the service is shutting down"))
        for t in self._threads:
            t.join(timeout)

    # ------------------------------------------------------------------ workers
    def _take(self) -> list[Job] | None:
        """The next batch: the oldest job and waiting jobs of its key (waiting up to max_wait)."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._pending.popleft()
            batch = [first]
            if first.key[0] != "solo" and self.max_batch > 1:  # type: ignore[index]
                deadline = time.monotonic() + self.max_wait
                while True:
                    for job in [j for j in self._pending if j.key == first.key][: self.max_batch - len(batch)]:
                        self._pending.remove(job)
                        batch.append(job)
                    left = deadline - time.monotonic()
                    if len(batch) >= self.max_batch or left <= 0 or self._closed or not self._coming(len(batch)):
                        break
                    self._cond.wait(left)
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            self._running += len(batch)
            self._cond.notify_all()  # queue depth changed
            return batch

    def _coming(self, taken: int) -> bool:
        """Whether more jobs may arrive soon (always, without an ``arriving`` count)."""
        if self.arriving is None:
            return True
        return self.arriving() - taken - len(self._pending) - self._running > 0

    def _work(self, model: Pipeline) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                if batch:
                    self._run(model, batch)
            finally:
                with self._cond:
                    self._running -= len(batch)
                    self._cond.notify_all()

    def _run(self, model: Pipeline, batch: list[Job]) -> None:
        start = time.monotonic()
        try:
            if self.before_run is not None:
                self.before_run(batch)
            start = time.monotonic()
            outs = run_jobs(model, batch)
        except Exception as exc:  # a broken graph, out of memory: fail these requests, keep serving
            for job in batch:
                job.future.set_exception(exc)
            return
        run_s = time.monotonic() - start
        if self.on_batch is not None:
            self.on_batch(len(batch), run_s)
        for job, (color, sketch) in zip(batch, outs):
            job.future.set_result(JobResult(color, sketch, len(batch), start - job.enqueued, run_s))


def run_jobs(model: Pipeline, jobs: list[Job]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Colour ``jobs`` (one key): (colour, sketch or None) each. Jobs of a ``net`` key share one
    network call; a ``solo`` job runs through :meth:`Colorizer.colorize_arrays` / :meth:`Pipeline.run`."""
    col: Colorizer = model.colorizer
    if len(jobs) == 1 and jobs[0].key[0] == "solo":  # type: ignore[index]
        job = jobs[0]
        if job.from_photo:
            r = model.run(job.image, hints=job.hints)
            return [(r.color, r.sketch)]  # type: ignore[union-attr]
        return [(col.colorize_arrays([job.image], [job.hints])[0], None)]
    sources: list[np.ndarray] = []
    hint_sets: list = []
    sketches: list[np.ndarray | None] = []
    for job in jobs:
        if job.from_photo:  # Pipeline.run's steps: to its working scale, sketch, hints scaled along
            work = model._to_work_scale(job.image)
            sketch = model._sketch(work)
            sources.append(model._as_rgb(sketch))
            hint_sets.append(None if job.hints is None else job.hints.scaled(work.shape[:2]))
            sketches.append(sketch)
        else:
            sources.append(job.image)
            hint_sets.append(job.hints)
            sketches.append(None)
    outs = col._run_net([col._fit(src, col.spread_hints(src, hs)) for src, hs in zip(sources, hint_sets)])
    results: list[tuple[np.ndarray, np.ndarray | None]] = []
    for job, src, job_sketch, out in zip(jobs, sources, sketches, outs):
        color = col._to_uint8(col._restore(out, src.shape[:2]))
        if job_sketch is not None:
            r = model._to_photo_scale(job_sketch, color, job.image.shape[:2])
            results.append((r.color, r.sketch))
        else:
            results.append((color, None))
    return results
