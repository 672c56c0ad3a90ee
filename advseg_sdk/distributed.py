"""Colour a whole image collection on Ray Data: a laptop and a cluster run the same code.

>>> from advseg_sdk.distributed import colorize_folder, colorize_dataset
>>> report = colorize_folder(["scans/"], "colour/", actors=4)          # PNGs, like `advseg colorize`
>>> print(report.summary())
>>> ds = colorize_dataset(ray.data.read_images("s3://bucket/sketches/", include_paths=True))
>>> ds.take(1)[0]["color"]                                              # uint8 (H, W, 3) arrays

Each actor loads one :class:`~advseg_sdk.colorizer.Colorizer` (or, for photos, one
:class:`~advseg_sdk.colorizer.Pipeline`) once and colours the batches it is given; images of one
network shape in a batch run as one network call, and a folder is ordered by image size so
batches hold one shape where the collection allows. Outputs follow ``advseg colorize`` exactly:
the same names (:func:`~advseg_sdk.colorize_batch.pending_outputs`), atomic writes
(:func:`~advseg_sdk.colorize_batch.save_result`), finished outputs skipped (so a re-run resumes),
and a bad file is a row of the result table (:func:`~advseg_sdk.colorize_batch.failure_reason`),
never a failed job. An actor that dies (a lost node, a killed process) is restarted and its
batch retried; outputs are named by input, so a retry never duplicates one.

Ray is an optional extra (``pip install 'advseg[ray]'``); it is imported only when these
functions run, so ``import advseg_sdk`` stays free of it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .batch import BatchReport
from .colorize_batch import ColorizeOptions, failure_reason, open_model, pending_outputs, save_result
from .options import with_overrides

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

__all__ = ["RayOptions", "RayReport", "colorize_dataset", "colorize_folder", "connect", "CRASH_ONCE_ENV"]

#: Fault injection for checking recovery on a real cluster: when set to a file path, the first
#: actor to create that file exits abruptly on its first batch (once per run, whichever actor).
CRASH_ONCE_ENV = "ADVSEG_RAY_CRASH_ONCE"
#: Blocks per run at most; above this a block holds several batches (fewer scheduler objects).
MAX_BLOCKS = 20_000


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: the cluster, the actor pool and its resources, the batches."""

    address: str | None = None  # a cluster to join; default $RAY_ADDRESS, else a local instance
    actors: int | None = None  # default: as many as the CPUs (or GPU shares) hold
    cpus_per_actor: float = 1.0  # on CPU, also each actor's ONNX Runtime threads
    gpus_per_actor: float = 0.0  # a fraction lets actors share a GPU
    batch_size: int | None = 8  # None: each block is one batch (one task)
    max_task_retries: int = 3  # an actor that dies is restarted and its batch retried this often


def _options(
    options: ColorizeOptions | None, ray_options: RayOptions | None, overrides: dict[str, Any]
) -> tuple[ColorizeOptions, RayOptions]:
    """Both option sets, with keyword overrides sorted to the one that has the field."""
    ray_names = set(RayOptions.__dataclass_fields__)
    colorize = with_overrides(ColorizeOptions, options, {k: v for k, v in overrides.items() if k not in ray_names})
    if colorize.hints is not None:
        raise ValueError("colour hints belong to one image: colour it in one process (colorize_files), not on Ray")
    return colorize, with_overrides(RayOptions, ray_options, {k: v for k, v in overrides.items() if k in ray_names})


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("colouring on Ray needs Ray Data: pip install 'advseg[ray]'") from None
    return ray


def connect(address: str | None = None, **init_kwargs: Any) -> bool:
    """Join the Ray cluster at ``address`` (or ``$RAY_ADDRESS``), else start a local instance.

    Returns whether this call started the connection (so the caller shuts it down); an
    already-initialised Ray is reused as it is.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"logging_level": "WARNING", **init_kwargs}
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise ConnectionError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    return True


# --------------------------------------------------------------------------- the actor


def _objects(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array (one entry per row) that numpy does not try to broadcast."""
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


class _ColorizeActor:
    """One model per actor process: loaded once (bundle checks, ONNX sessions), then fed batches.

    A batch is a dict of columns: ``path`` (files to read) or ``image`` (arrays), and optionally
    ``output`` (where to write; then rows come back as ``status``/``error`` only, no pixels).
    """

    def __init__(
        self,
        model_options: dict[str, Any],
        from_photo: bool,
        save_sketch: bool,
        max_pixels: int | None,
        threads: int | None,
        crash_once: str | None = None,
    ):
        opts = dict(model_options)
        if threads:  # several actors share a machine: ONNX Runtime must not claim every core
            opts["intra_op_threads"] = threads
        self.model = open_model(from_photo=from_photo, **opts)
        sketcher = getattr(self.model, "sketcher", None)
        if threads and sketcher is not None and sketcher.runner is not None:
            from .runtime import open_runner

            sketcher.runner = open_runner(sketcher.bundle, providers=opts.get("providers"), intra_op_threads=threads)
        self.from_photo = from_photo
        self.save_sketch = save_sketch
        self.max_pixels = max_pixels
        self.crash_once = crash_once

    def _maybe_crash(self) -> None:
        marker, self.crash_once = self.crash_once, None
        if not marker:
            return
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(3)  # an abrupt death, as a lost node or an OOM kill would be

    def _load(self, batch: dict[str, np.ndarray], i: int) -> np.ndarray:
        from .imageio import read_image, to_rgb_uint8

        if "image" in batch:
            return to_rgb_uint8(batch["image"][i], max_pixels=self.max_pixels)
        return read_image(str(batch["path"][i]), max_pixels=self.max_pixels)

    def _infer(self, images: list[np.ndarray]) -> list[Any]:
        """Results for ``images`` (one call: same-shape images share network calls), or per image
        with the exception in place of a result when the joint call fails."""

        def run(xs: list[np.ndarray]) -> list[Any]:
            return self.model.run(xs) if self.from_photo else self.model.colorize_arrays(xs)

        try:
            return run(images)
        except Exception:
            out: list[Any] = []
            for img in images:
                try:
                    out.append(run([img])[0])
                except Exception as exc:  # noqa: PERF203 - per-image attribution of the failure
                    out.append(exc)
            return out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._maybe_crash()
        n = len(next(iter(batch.values())))
        errors = [""] * n
        images: dict[int, np.ndarray] = {}
        for i in range(n):
            try:
                images[i] = self._load(batch, i)
            except Exception as exc:  # a bad file is a row of the result, not a failed job
                errors[i] = failure_reason(exc)
        results: dict[int, Any] = dict(zip(images, self._infer(list(images.values()))))
        for i, r in list(results.items()):
            if isinstance(r, Exception):
                errors[i] = failure_reason(r)
                del results[i]
        out = {k: v for k, v in batch.items() if k != "image"}
        if "output" in batch:
            for i, r in results.items():
                try:
                    save_result(Path(str(batch["output"][i])), r, save_sketch=self.save_sketch)
                except Exception as exc:
                    errors[i] = failure_reason(exc)
            out["status"] = np.array(["failed" if e else "written" for e in errors], dtype=object)
        else:
            empty = np.zeros((0, 0, 3), np.uint8)  # a failed row: no pixels, the reason in "error"
            res = [results.get(i) for i in range(n)]
            if self.from_photo:
                out["color"] = _objects([empty if r is None else r.color for r in res])
                out["sketch"] = _objects([empty[..., 0] if r is None else r.sketch for r in res])
            else:
                out["color"] = _objects([empty if r is None else r for r in res])
        out["error"] = np.array(errors, dtype=object)
        return out


# --------------------------------------------------------------------------- datasets


def _preflight(options: ColorizeOptions) -> None:
    """Open the model once here, on CPU, so a missing or broken bundle is one clear error before
    any actor starts (TensorRT engines are matched on the workers' GPUs, not here)."""
    opts = dict(options.model_kwargs(absolute_paths=True), providers=["CPUExecutionProvider"])
    if str(opts.get("precision", "")).startswith("trt"):
        opts["precision"] = "auto"
    open_model(from_photo=options.from_photo, **opts)


def _actor_count(actors: int | None, cpus_per_actor: float, gpus_per_actor: float, spare_cpus: int = 0) -> int:
    """``actors``, else as many as the cluster's CPUs hold (less ``spare_cpus``, which upstream
    read tasks need: actors holding every CPU would starve them) and, with GPUs, its GPU shares."""
    if actors is not None:
        if actors < 1:
            raise ValueError(f"actors must be at least 1, got {actors}")
        return actors
    res = _ray().cluster_resources()
    n = int(max(res.get("CPU", 1) - spare_cpus, cpus_per_actor) / cpus_per_actor)
    if gpus_per_actor > 0:
        n = min(n, int(res.get("GPU", 0) / gpus_per_actor))
    return max(1, n)


def colorize_dataset(
    ds: ray.data.Dataset,
    options: ColorizeOptions | None = None,
    ray_options: RayOptions | None = None,
    **overrides: Any,
) -> ray.data.Dataset:
    """Colour a Ray Dataset lazily: each row's image goes through an actor-held model.

    Rows need ``image`` (arrays, e.g. from ``ray.data.read_images``) or ``path`` (files, read and
    checked by :func:`~advseg_sdk.imageio.read_image`). Without an ``output`` column the result
    rows hold ``color`` (uint8 (H, W, 3); with ``from_photo`` also ``sketch``) and ``error``
    (``""`` when it worked; a failed row's arrays are empty). With ``output`` (a PNG path per row)
    the image is written there atomically and the row holds ``status`` and ``error`` instead.
    Other columns pass through. ``options`` and ``ray_options`` (or ``overrides``, their field
    names) say what runs where. Reading (``ray.data.read_images``) runs as tasks that need CPUs of
    their own: by default one CPU is left to them, and ``actors`` should leave some too (actors
    holding every CPU stall the reads).
    """
    ray = _ray()
    opts, ro = _options(options, ray_options, overrides)
    batch_size, cpus_per_actor, gpus_per_actor = ro.batch_size, ro.cpus_per_actor, ro.gpus_per_actor
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if gpus_per_actor < 0 or cpus_per_actor <= 0:
        raise ValueError("gpus_per_actor must be >= 0 and cpus_per_actor > 0")
    threads = None if gpus_per_actor > 0 else max(1, int(cpus_per_actor))
    with warnings.catch_warnings():
        # max_restarts / max_task_retries have no named parameter yet; bounded retries keep a
        # batch that kills its actor every time from looping forever (Ray Data's default)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return ds.map_batches(
            _ColorizeActor,
            fn_constructor_kwargs=dict(
                model_options=opts.model_kwargs(absolute_paths=True),
                from_photo=opts.from_photo,
                save_sketch=opts.save_sketch,
                max_pixels=opts.max_pixels,
                threads=threads,
                crash_once=os.environ.get(CRASH_ONCE_ENV) or None,
            ),
            compute=ray.data.ActorPoolStrategy(
                size=_actor_count(ro.actors, cpus_per_actor, gpus_per_actor, spare_cpus=1)
            ),
            batch_size=batch_size,
            batch_format="numpy",
            num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor or None,
            max_restarts=-1,
            max_task_retries=ro.max_task_retries,
        )


# --------------------------------------------------------------------------- folders


@dataclass
class RayReport(BatchReport):
    """A :class:`BatchReport` plus the result table (one row per input coloured) and the timing."""

    rows: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    actors: int = 0

    @property
    def images_per_s(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"coloured {len(self.written)} image(s) in {self.seconds:.1f} s "
            f"({self.images_per_s:.2f} images/s) with {self.actors} actor(s); "
            f"{len(self.failed)} failed, {len(self.skipped)} skipped"
        )


def _size_key(path: Path) -> tuple[int, int]:
    """Image size from the file header (cheap), to order work so batches share a network shape."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception:
        return 0, 0  # unreadable: the actor reports why


def colorize_folder(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: ColorizeOptions | None = None,
    ray_options: RayOptions | None = None,
    err: Any = None,
    **overrides: Any,
) -> RayReport:
    """``advseg colorize`` on Ray: colour files and folders into ``out_dir`` with a pool of actors.

    Names, refusals, skips (a re-run resumes) and atomic writes are those of
    :func:`~advseg_sdk.colorize_batch.colorize_files`; failing inputs are reported, never fatal.
    Ray is joined at ``address`` (``$RAY_ADDRESS``) or started locally (and stopped afterwards);
    on a cluster, inputs and ``out_dir`` must be on storage every node sees, at the same path.
    """
    ray = _ray()
    opts, ro = _options(options, ray_options, overrides)
    batch_size, progress = ro.batch_size or 8, opts.progress
    err = err if err is not None else sys.stderr
    base, todo = pending_outputs(inputs, out_dir, opts, err=err)
    report = RayReport(written=base.written, skipped=base.skipped, failed=base.failed)
    if not todo:
        return report
    todo.sort(key=lambda job: _size_key(job[0]))
    items = [{"input": str(f), "path": os.path.abspath(f), "output": os.path.abspath(t)} for f, t in todo]
    by_input = {str(f): (f, t) for f, t in todo}
    _preflight(opts)
    started = connect(ro.address)
    data_log = logging.getLogger("ray.data")
    log_level = data_log.level
    try:
        n_blocks = min(math.ceil(len(items) / batch_size), MAX_BLOCKS)
        n_actors = min(_actor_count(ro.actors, ro.cpus_per_actor, ro.gpus_per_actor), n_blocks)
        ds = ray.data.from_items(items, override_num_blocks=n_blocks)
        # a block of at most batch_size rows is one batch and one task
        one_batch_per_block = n_blocks * batch_size >= len(items)
        ds = colorize_dataset(
            ds, opts, dataclasses.replace(ro, actors=n_actors, batch_size=None if one_batch_per_block else batch_size)
        )
        ds.context.enable_progress_bars = progress
        if not progress:
            data_log.setLevel(logging.WARNING)
        ds.context.max_errored_blocks = -1  # a batch that kills its actor every try is reported below
        report.actors = n_actors
        t0 = time.perf_counter()
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for key, status, error in zip(batch["input"], batch["status"], batch["error"]):
                f, t = by_input[str(key)]
                row = {
                    "input": str(f),
                    "output": str(t),
                    "status": str(status),
                    "error": str(error).replace(os.path.abspath(f), str(f)),
                }
                report.rows.append(row)
                if row["status"] == "written":
                    report.written.append(t)
                else:
                    report.failed.append((f, row["error"]))
                    print(
                        f"error: {row['error']}" if str(f) in row["error"] else f"error: {f}: {row['error']}", file=err
                    )
        report.seconds = time.perf_counter() - t0
    finally:
        data_log.setLevel(log_level)
        if started:
            ray.shutdown()
    done = {r["input"] for r in report.rows}
    for key, (f, t) in by_input.items():
        if key not in done:  # its batch killed its actor on every try (or raised outside our checks)
            reason = (
                f"{f}: its batch did not come back from the Ray workers (tried up to "
                f"{ro.max_task_retries + 1} times: a crash, out of memory?); see the Ray logs"
            )
            report.rows.append({"input": str(f), "output": str(t), "status": "failed", "error": reason})
            report.failed.append((f, reason))
            print(f"error: {reason}", file=err)
    return report
