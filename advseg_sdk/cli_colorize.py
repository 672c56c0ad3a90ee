"""`advseg colorize` (sketches or photos → colour images) and `advseg info` (bundle summary).

The work is done by :func:`colorize_files` and :func:`bundle_summary` (callable from Python); the
click commands are thin wrappers mapping results to exit codes (0 ok, 1 something failed,
2 usage error).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

import click

from .batch import IMAGE_SUFFIXES, BatchReport, collect_inputs, pending_jobs

__all__ = ["colorize_files", "bundle_summary", "colorize", "info"]

PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16", "int8", "trt")
SKETCH_SUFFIX = ".sketch.png"  # --save-sketch: <stem>.sketch.png beside <stem>.png


def pending_outputs(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    save_sketch: bool = False,
    overwrite: bool = False,
    err: Any = None,
) -> tuple[BatchReport, list[tuple[Path, Path]]]:
    """The (input, output) pairs still to colour, and a report of the rest.

    Refused inputs (their output would replace an input or another input's output) are in
    ``report.failed`` and printed to ``err``; inputs whose output exists are in ``report.skipped``
    unless ``overwrite``. When work remains, the output folder exists and stale temporaries of
    killed runs are gone. Shared by every way of running ``advseg colorize``, so a resumed or
    distributed run names, refuses and skips exactly as a single process does.
    """
    # never re-colour our own outputs, overwrite an input, or merge two inputs into one output
    return pending_jobs(inputs, out_dir, ".png", sidecars=(SKETCH_SUFFIX,) if save_sketch else (),
                        overwrite=overwrite, err=err)


def open_model(
    bundle: str | os.PathLike | None = None,
    from_photo: bool = False,
    sketch_method: str = "hed",
    sketch_bundle: str | os.PathLike | None = None,
    **options: Any,
) -> Any:
    """The model ``advseg colorize`` runs: a ``Pipeline`` for photos, else a ``Colorizer``;
    ``options`` (providers, precision, tile, ...) go to it."""
    from .colorizer import Colorizer, Pipeline

    if from_photo:
        return Pipeline(bundle, sketch=sketch_method, sketch_bundle=sketch_bundle, **options)
    return Colorizer(bundle, **options)


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
    bundle: str | os.PathLike | None = None,
    from_photo: bool = False,
    sketch_method: str = "hed",
    sketch_bundle: str | os.PathLike | None = None,
    save_sketch: bool = False,
    tile: int | None = None,
    tile_overlap: int = 32,
    precision: str = "auto",
    providers: Sequence[str] | None = None,
    strict: bool = False,
    overwrite: bool = False,
    max_pixels: int | None = None,
    progress: bool = True,
    err: Any = None,
) -> BatchReport:
    """Colour every input image into ``out_dir/<stem>.png`` (atomic writes).

    With ``from_photo`` the inputs are photos: they are sketched first (``sketch_method``), and
    with ``save_sketch`` the sketch is written too (``<stem>.sketch.png``). A failing input is
    recorded in ``report.failed`` (and printed to ``err``) and the batch goes on; errors that
    concern the whole batch (missing or corrupt bundle) raise.
    """
    from tqdm import tqdm

    from .imageio import read_image

    err = err if err is not None else sys.stderr
    report, todo = pending_outputs(inputs, out_dir, save_sketch=save_sketch, overwrite=overwrite, err=err)
    if not todo:
        return report
    model = open_model(bundle, from_photo=from_photo, sketch_method=sketch_method, sketch_bundle=sketch_bundle,
                       providers=providers, precision=precision, tile=tile, tile_overlap=tile_overlap,
                       strict=strict)
    read_kw = {} if max_pixels is None else {"max_pixels": max_pixels}
    bar = tqdm(todo, desc="colorize", unit="img", disable=not progress, file=err)
    for f, t in bar:
        try:
            rgb = read_image(f, **read_kw)
            save_result(t, model.run(rgb) if from_photo else model.colorize(rgb), save_sketch=save_sketch)
            report.written.append(t)
        except Exception as exc:  # one bad input must not stop the batch
            reason = failure_reason(exc)
            report.failed.append((f, reason))
            tqdm.write(f"error: {reason}" if str(f) in reason else f"error: {f}: {reason}", file=err)
    return report


@click.command("colorize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the <stem>.png colour images (created if missing).")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="sketch2color bundle (.advseg dir or .zip); default: "
                   "$ADVSEG_HOME/bundles/demo-sketch2color.advseg.")
@click.option("--from-photo", is_flag=True, help="Inputs are photos: sketch them first, then colour.")
@click.option("--sketch-method", type=click.Choice(["hed", "xdog", "canny"]), default="hed", show_default=True,
              help="With --from-photo: how photos become sketches.")
@click.option("--sketch-bundle", type=click.Path(path_type=Path), default=None,
              help="With --from-photo --sketch-method hed: the HED bundle (default $ADVSEG_HOME/bundles/hed.advseg).")
@click.option("--save-sketch", is_flag=True, help="With --from-photo: also write <stem>.sketch.png.")
@click.option("--tile", type=click.IntRange(min=8), default=None,
              help="Run in overlapping N x N tiles (bounded memory; fixed-size nets: each tile is resized to the net).")
@click.option("--tile-overlap", type=click.IntRange(min=0), default=32, show_default=True,
              help="Minimum overlap of neighbouring tiles, in pixels.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto", show_default=True,
              help="Bundle artefact: auto = matching TensorRT engine, else fp16 on CUDA / fp32 on CPU.")
@click.option("--providers", default=None, metavar="LIST",
              help="Comma-separated ONNX Runtime providers in order, e.g. CUDAExecutionProvider,CPUExecutionProvider.")
@click.option("--strict", is_flag=True, help="Refuse a TensorRT engine built for another GPU/TensorRT instead of falling back.")
@click.option("--overwrite", is_flag=True, help="Recompute inputs whose output already exists.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Refuse images with more pixels than this (default 64 MP or $ADVSEG_MAX_PIXELS).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--ray", "use_ray", is_flag=True,
              help="Colour on Ray Data with a pool of actors, locally or on a cluster (pip install 'advseg[ray]').")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --ray: the cluster to join (default $RAY_ADDRESS, else a local Ray instance).")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="With --ray: actors, each holding one model (default: one per CPU, or per GPU share).")
@click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=0.0,
              help="With --ray: GPUs per actor; a fraction lets actors share a GPU.")
def colorize(inputs: tuple[Path, ...], out_dir: Path, bundle: Path | None, from_photo: bool, sketch_method: str,
             sketch_bundle: Path | None, save_sketch: bool, tile: int | None, tile_overlap: int, precision: str,
             providers: str | None, strict: bool, overwrite: bool, max_pixels: int | None, quiet: bool,
             use_ray: bool, ray_address: str | None, actors: int | None, gpus_per_actor: float) -> None:
    """Colour sketches (or, with --from-photo, photos) given as files or folders (recursive)."""
    if not use_ray and (ray_address or actors or gpus_per_actor):
        raise click.UsageError("--ray-address, --actors and --gpus-per-actor need --ray")
    if (save_sketch or sketch_bundle) and not from_photo:
        raise click.UsageError("--save-sketch and --sketch-bundle need --from-photo")
    if tile is not None and tile_overlap >= tile:
        raise click.UsageError(f"--tile-overlap ({tile_overlap}) must be smaller than --tile ({tile})")
    provider_list = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    try:
        found = collect_inputs(inputs, exclude=out_dir)
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="INPUTS") from None
    if not found:
        raise click.BadParameter(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {', '.join(map(str, inputs))}",
            param_hint="INPUTS")
    kwargs: dict[str, Any] = dict(
        bundle=bundle, from_photo=from_photo, sketch_method=sketch_method,
        sketch_bundle=sketch_bundle, save_sketch=save_sketch, tile=tile, tile_overlap=tile_overlap,
        precision=precision, providers=provider_list, strict=strict, overwrite=overwrite,
        max_pixels=max_pixels, progress=not quiet,
    )
    try:
        if use_ray:
            from .distributed import colorize_folder

            report = colorize_folder(inputs, out_dir, address=ray_address, actors=actors,
                                     gpus_per_actor=gpus_per_actor, **kwargs)
        else:
            report = colorize_files(inputs, out_dir, **kwargs)
    except click.UsageError:
        raise
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if report.skipped:
        click.echo(f"skipped {len(report.skipped)} input(s) whose output exists in {out_dir} (use --overwrite)",
                   err=True)
    click.echo(f"wrote {len(report.written)} image(s) to {out_dir}")
    if use_ray and report.written:
        click.echo(report.summary())
    if report.failed:
        click.echo(f"{len(report.failed)} input(s) failed:", err=True)
        for f, reason in report.failed:
            click.echo(f"  {reason}" if str(f) in reason else f"  {f}: {reason}", err=True)
        sys.exit(1)


# --------------------------------------------------------------------------- info


def _mb(n: int | None) -> str:
    return "?" if n is None else (f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def bundle_summary(bundle: Any) -> str:
    """A human-readable multi-line summary of a loaded bundle's manifest."""
    b = bundle
    spec = b.input_spec
    lines = [f"bundle     {b.source}" + (f"  (extracted to {b.path})" if b.source != b.path else ""),
             f"format     {b.format_version}",
             f"name       {b.name}",
             f"task       {b.task}"]
    args = b.architecture.get("args") or {}
    args = {k: v for k, v in args.items() if not (k == "arch" and v == b.arch_name)}
    lines.append(f"arch       {b.arch_name}" + ("  " + " ".join(f"{k}={_fmt(v)}" for k, v in args.items()) if args else ""))
    size = (f"fixed {spec.fixed_size[0]}x{spec.fixed_size[1]}" if spec.fixed_size
            else f"size multiple {spec.size_multiple}" + (f", min {spec.min_size}" if spec.min_size > 1 else ""))
    lines.append(f"input      {spec.name or '-'}: {spec.layout} {spec.channels}ch {spec.color} "
                 f"range [{_fmt(spec.range[0])}, {_fmt(spec.range[1])}], {size}")
    out = b.output_spec
    if out:
        lines.append("output     " + ", ".join(f"{k}={_fmt(v)}" for k, v in out.items()))
    lines.append("artefacts")
    for a in b.artefacts:
        row = f"  {a.label:<9} {a.format:<6} {a.file:<28} {_mb(a.bytes):>9}  sha256 {a.sha256[:16]}…"
        if a.opset is not None:
            row += f"  opset {a.opset}"
        if a.io_dtype:
            row += f"  io {a.io_dtype}"
        lines.append(row)
        if a.engine is not None:
            e = a.engine
            lines.append(f"            built for {e.describe()}" + (f", CUDA {e.cuda_version}" if e.cuda_version else ""))
            for p in e.profiles:
                lines.append(f"            profile {p.get('input', '')}: min {p.get('min')} opt {p.get('opt')} max {p.get('max')}")
    if b.parity:
        lines.append("parity")
        for file, p in b.parity.items():
            if not isinstance(p, dict):
                continue
            bits = []
            if "max_abs" in p:
                bits.append(f"max_abs {_fmt(p['max_abs'])}")
            if "psnr" in p:  # null = identical outputs (infinite PSNR)
                bits.append("PSNR inf (identical)" if p["psnr"] is None else f"PSNR {_fmt(p['psnr'])} dB")
            ref = p.get("reference")
            inputs = p.get("inputs")
            n_in = len(inputs) if isinstance(inputs, (list, tuple)) else inputs
            ctx = ", ".join(x for x in (f"vs {ref}" if ref else "", f"{n_in} inputs" if n_in else "") if x)
            extra = {k: v for k, v in p.items() if k not in ("max_abs", "psnr", "reference", "inputs")}
            bits += [f"{k} {_fmt(v)}" for k, v in extra.items() if not isinstance(v, (dict, list))]
            lines.append(f"  {file:<28} " + "  ".join(bits) + (f"  ({ctx})" if ctx else ""))
    if b.manifest.get("degraded"):
        reasons = b.manifest.get("degraded_reasons") or {}
        lines.append("DEGRADED   written with --allow-degraded: "
                     + ("; ".join(f"{f}: {', '.join(map(str, r))}" for f, r in reasons.items()) or "below a parity threshold"))
    if b.provenance:
        lines.append("provenance")
        for k, v in b.provenance.items():
            if isinstance(v, dict):
                v = ", ".join(f"{kk}={_fmt(vv)}" for kk, vv in v.items() if not isinstance(vv, (dict, list)))
            lines.append(f"  {k:<26} {_fmt(v)}")
    return "\n".join(lines)


@click.command("info")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--no-verify", is_flag=True, help="Skip the sha256 check of the artefacts.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw manifest as JSON.")
def info(bundle: Path, no_verify: bool, as_json: bool) -> None:
    """Summarise a bundle: task, architecture, artefacts (precision, sha256, size), parity, provenance."""
    import json

    from .bundle import BundleError, load_bundle

    try:
        b = load_bundle(bundle, verify=not no_verify)
    except BundleError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(b.manifest, indent=2))
        return
    click.echo(bundle_summary(b))
    if not no_verify:
        click.echo(f"verified   sha256 of {len(b.artefacts)} artefact(s) OK")
