"""`advseg sketch`: photos (files or folders) -> line drawings, one PNG per input.

The work is done by :func:`sketch_files` (callable from Python and tests); the click command
is a thin wrapper that maps its result to an exit code (0 all ok, 1 some failed, 2 usage).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import click
import numpy as np

from . import cli_options as opt
from .batch import BatchReport, cli_finish, cli_inputs, pending_jobs
from .options import with_overrides

__all__ = ["SketchOptions", "sketch_files", "sketch"]


@dataclass(frozen=True)
class SketchOptions:
    """How photos become sketches: the method, the working size, the HED bundle and providers,
    and the batch (overwriting, the pixel limit, progress)."""

    method: str = "hed"
    size: int | None = None  # work at this long side; the sketch keeps the photo's size
    overwrite: bool = False
    bundle: str | os.PathLike | None = None
    max_pixels: int | None = None
    providers: Sequence[str] | None = None
    progress: bool = True


def sketch_files(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: SketchOptions | None = None,
    err: TextIO | None = None,
    **overrides: Any,
) -> BatchReport:
    """Sketch every input image into ``out_dir/<stem>.png`` (atomic writes).

    ``options`` (or ``overrides``, its field names) say how. Inputs that fail (unreadable, too
    large, ...) are recorded in ``report.failed`` and printed to ``err`` (default stderr), and the
    batch goes on; nothing is written for them. Existing outputs are skipped unless ``overwrite``.
    Errors that concern the whole batch (bad method, missing HED bundle) raise.
    """
    from tqdm import tqdm

    from .imageio import ImageReadError, read_image, write_image
    from .sketcher import SketchExtractor

    opts = with_overrides(SketchOptions, options, overrides)
    method, size, max_pixels = opts.method, opts.size, opts.max_pixels
    err = err if err is not None else sys.stderr
    out_dir = Path(out_dir)
    report, todo = pending_jobs(inputs, out_dir, overwrite=opts.overwrite, err=err)  # never overwrite an input
    if not todo:
        return report
    extractor = SketchExtractor(method=method, bundle=opts.bundle, providers=opts.providers, size=size)
    read_kw = {} if max_pixels is None else {"max_pixels": max_pixels}
    bar = tqdm(todo, desc=f"sketch ({method})", unit="img", disable=not opts.progress, file=err)
    for f, t in bar:
        try:
            rgb = read_image(f, **read_kw)
            wh = extractor.working_size(rgb.shape[:2])
            if method == "hed" and size is None and wh != rgb.shape[:2]:
                tqdm.write(
                    f"note: {f} is {rgb.shape[1]}x{rgb.shape[0]}; HED works at {wh[1]}x{wh[0]} to bound "
                    "memory, the sketch keeps the full size (--size N chooses the working size)",
                    file=err,
                )
            write_image(t, cast(np.ndarray, extractor.extract(rgb)))  # one image in, one sketch out
            report.written.append(t)
        except ImageReadError as exc:  # its message names the file
            report.failed.append((f, str(exc)))
            tqdm.write(f"error: {exc}", file=err)
        except Exception as exc:  # one bad file must not stop the batch
            reason = f"{type(exc).__name__}: {exc}"
            report.failed.append((f, reason))
            tqdm.write(f"error: {f}: {reason}", file=err)
    return report


_METHOD_HELP = "hed: HED network (ONNX bundle) + official post-processing; xdog/canny: weight-free."
_SIZE_HELP = "Work at long side N (faster on big photos, e.g. 1024); the output keeps the input size."


@click.command("sketch")
@opt.input_paths()
@opt.output_folder("Folder for the <stem>.png sketches (created if missing).")
@opt.choice("--method", opt.SKETCH_METHODS, "hed", _METHOD_HELP)
@opt.number("--size", click.IntRange(min=16), None, _SIZE_HELP)
@opt.flag("--overwrite", "Re-sketch inputs whose output already exists.")
@opt.optional_path("--bundle", "HED bundle (.advseg dir or .zip); default: the one in $ADVSEG_HOME/bundles.")
@opt.max_pixels()
def sketch(
    inputs: tuple[Path, ...],
    out_dir: Path,
    method: str,
    size: int | None,
    overwrite: bool,
    bundle: Path | None,
    max_pixels: int | None,
) -> None:
    """Turn photos (files or folders, recursive) into black-on-white line drawings."""
    if bundle is not None and method != "hed":
        raise click.UsageError(f"--bundle is only used by --method hed, not {method}")
    cli_inputs(inputs, out_dir)
    try:
        report = sketch_files(
            inputs,
            out_dir,
            SketchOptions(method=method, size=size, overwrite=overwrite, bundle=bundle, max_pixels=max_pixels),
        )
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    cli_finish(report, out_dir, "sketch(es)", "failed (nothing written for them):", reasons=False)
