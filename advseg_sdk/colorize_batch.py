"""Colouring files in a batch: the options, the output names, the model, the writes.

One place for what every way of running ``advseg colorize`` shares (one process, or Ray actors),
so a resumed or distributed run names, refuses, skips and writes exactly as a single process does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .batch import BatchReport, pending_jobs
from .options import with_overrides

__all__ = [
    "SKETCH_SUFFIX",
    "PRECISION_CHOICES",
    "ColorizeOptions",
    "colorize_files",
    "pending_outputs",
    "open_model",
    "save_result",
    "failure_reason",
]

PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16", "int8", "trt")
SKETCH_SUFFIX = ".sketch.png"  # save_sketch: <stem>.sketch.png beside <stem>.png


@dataclass(frozen=True)
class ColorizeOptions:
    """What to run and how: the model (bundle, photos or sketches, tiling, precision, providers)
    and the batch (sidecar sketches, overwriting, the pixel limit, progress).

    ``hints``: colour hints for a single input (in its pixels; a bundle that takes hints only): a
    sequence of points ``(x, y, colour)`` / :class:`~advseg_sdk.hints.Hint`, or the path of an
    RGBA scribble PNG. One process only (not with Ray)."""

    bundle: str | os.PathLike | None = None
    from_photo: bool = False  # inputs are photos: sketch them first
    sketch_method: str = "hed"
    sketch_bundle: str | os.PathLike | None = None
    save_sketch: bool = False  # with from_photo: also write <stem>.sketch.png
    tile: int | None = None
    tile_overlap: int = 32
    precision: str = "auto"
    providers: Sequence[str] | None = None
    strict: bool = False  # refuse a TensorRT engine built elsewhere instead of falling back
    overwrite: bool = False
    max_pixels: int | None = None
    progress: bool = True
    hints: str | os.PathLike | Sequence[Any] | None = None
    hint_spread: str = "region"  # or "none" (see advseg_sdk.hint_spread)

    def model_kwargs(self, absolute_paths: bool = False) -> dict[str, Any]:
        """Keyword arguments of the model (:class:`Colorizer` or :class:`Pipeline`); bundle paths
        made absolute on request (Ray workers do not share the driver's working directory)."""

        def absolute(b: Any) -> Any:
            return os.path.abspath(b) if absolute_paths and isinstance(b, (str, os.PathLike)) else b

        kw: dict[str, Any] = dict(
            bundle=absolute(self.bundle),
            providers=list(self.providers) if self.providers else None,
            precision=self.precision,
            tile=self.tile,
            tile_overlap=self.tile_overlap,
            strict=self.strict,
            hint_spread=self.hint_spread,
        )
        if self.from_photo:
            kw.update(sketch_method=self.sketch_method, sketch_bundle=absolute(self.sketch_bundle))
        return kw


def pending_outputs(
    inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, options: ColorizeOptions, err: Any = None
) -> tuple[BatchReport, list[tuple[Path, Path]]]:
    """The (input, output) pairs still to colour, and a report of the rest.

    Refused inputs (their output would replace an input or another input's output) are in
    ``report.failed`` and printed to ``err``; inputs whose output exists are in ``report.skipped``
    unless ``options.overwrite``. When work remains, the output folder exists and stale temporaries
    of killed runs are gone.
    """
    sidecars = (SKETCH_SUFFIX,) if options.save_sketch else ()
    return pending_jobs(inputs, out_dir, ".png", sidecars=sidecars, overwrite=options.overwrite, err=err)


def open_model(from_photo: bool = False, **model_kwargs: Any) -> Any:
    """The model ``advseg colorize`` runs: a ``Pipeline`` for photos, else a ``Colorizer``
    (``model_kwargs`` as made by :meth:`ColorizeOptions.model_kwargs`, plus session options)."""
    from .colorizer import Colorizer, Pipeline

    if from_photo:
        kw = dict(model_kwargs)
        bundle = kw.pop("bundle", None)
        return Pipeline(
            bundle, sketch=kw.pop("sketch_method", "hed"), sketch_bundle=kw.pop("sketch_bundle", None), **kw
        )
    return Colorizer(**model_kwargs)


def save_result(out: Path, result: Any, save_sketch: bool = False) -> Path:
    """Write one input's colour image to ``out`` atomically (a ``PipelineResult`` also writes its
    sketch to ``<stem>.sketch.png`` with ``save_sketch``)."""
    from .colorizer import PipelineResult
    from .imageio import write_image

    if isinstance(result, PipelineResult):
        if save_sketch:
            write_image(out.with_name(out.stem + SKETCH_SUFFIX), result.sketch)
        result = result.color
    return write_image(out, result)


def failure_reason(exc: BaseException) -> str:
    """The one line a failing input is reported with (our errors already name the file)."""
    return str(exc) if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: {exc}"


def colorize_files(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: ColorizeOptions | None = None,
    err: TextIO | None = None,
    **overrides: Any,
) -> BatchReport:
    """Colour every input image into ``out_dir/<stem>.png`` (atomic writes).

    ``options`` (or ``overrides``, its field names) say what to run. With ``from_photo`` the inputs
    are photos: they are sketched first, and with ``save_sketch`` the sketch is written too. A
    failing input is recorded in ``report.failed`` (and printed to ``err``) and the batch goes on;
    errors that concern the whole batch (missing or corrupt bundle) raise.
    """
    from tqdm import tqdm

    from .imageio import read_image

    opts = with_overrides(ColorizeOptions, options, overrides)
    err = err if err is not None else sys.stderr
    report, todo = pending_outputs(inputs, out_dir, opts, err=err)
    if not todo:
        return report
    model = open_model(from_photo=opts.from_photo, **opts.model_kwargs())
    if opts.hints is not None:
        getattr(model, "colorizer", model).require_hints()  # the whole batch is wrong: raise
    read_kw = {} if opts.max_pixels is None else {"max_pixels": opts.max_pixels}
    bar = tqdm(todo, desc="colorize", unit="img", disable=not opts.progress, file=err)
    for f, t in bar:
        try:
            rgb = read_image(f, **read_kw)
            result = model.run(rgb, hints=opts.hints) if opts.from_photo else model.colorize(rgb, hints=opts.hints)
            save_result(t, result, save_sketch=opts.save_sketch)
            report.written.append(t)
        except Exception as exc:  # one bad input must not stop the batch
            reason = failure_reason(exc)
            report.failed.append((f, reason))
            tqdm.write(f"error: {reason}" if str(f) in reason else f"error: {f}: {reason}", file=err)
    return report
