"""`advseg colorize` (sketches or photos → colour images) and `advseg info` (bundle summary).

The work is done by :func:`~advseg_sdk.colorize_batch.colorize_files` (or, with ``--ray``,
:func:`~advseg_sdk.distributed.colorize_folder`) and :func:`bundle_summary`; the click commands
build the options once and map results to exit codes (0 ok, 1 something failed, 2 usage error).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from . import cli_options as opt
from .batch import BatchReport, cli_finish, cli_inputs
from .colorize_batch import PRECISION_CHOICES, ColorizeOptions, colorize_files
from .vocab import HINT_SPREAD_MODES

__all__ = ["colorize_files", "bundle_summary", "colorize", "info"]


_BUNDLE_HELP = "sketch2color bundle (.advseg dir or .zip); default: $ADVSEG_HOME/bundles/demo-sketch2color.advseg."
_SKETCH_BUNDLE_HELP = "With --from-photo --sketch-method hed: the HED bundle (default $ADVSEG_HOME/bundles/hed.advseg)."
_TILE_HELP = "Run in overlapping N x N tiles (bounded memory; fixed-size nets: each tile is resized to the net)."
_PRECISION_HELP = "Bundle artefact: auto = matching TensorRT engine, else fp16 on CUDA / fp32 on CPU."
_PROVIDERS_HELP = "Comma-separated ONNX Runtime providers in order, e.g. CUDAExecutionProvider,CPUExecutionProvider."
_STRICT_HELP = "Refuse a TensorRT engine built for another GPU/TensorRT instead of falling back."
_RAY_HELP = "Colour on Ray Data with a pool of actors, locally or on a cluster (pip install 'advseg[ray]')."
_GPUS_HELP = "With --ray: GPUs per actor; a fraction lets actors share a GPU."
_ACTORS_HELP = "With --ray: actors, each holding one model (default: one per CPU, or per GPU share)."
_HINTS_HELP = "Colour hints for a single input: an RGBA PNG of its size (alpha > 127 = hinted pixel, RGB its colour)."
_SPREAD_HELP = "region: each hint fills the enclosed region of the sketch it falls in; none: hints as given."
_HINT_HELP = "A colour hint at pixel X,Y of a single input, e.g. 120,40,#3366ff (repeatable)."


@click.command("colorize")
@opt.input_paths()
@opt.output_folder("Folder for the <stem>.png colour images (created if missing).")
@opt.optional_path("--bundle", _BUNDLE_HELP)
@opt.flag("--from-photo", "Inputs are photos: sketch them first, then colour.")
@opt.choice("--sketch-method", opt.SKETCH_METHODS, "hed", "With --from-photo: how photos become sketches.")
@opt.optional_path("--sketch-bundle", _SKETCH_BUNDLE_HELP)
@opt.flag("--save-sketch", "With --from-photo: also write <stem>.sketch.png.")
@opt.optional_path("--hints", _HINTS_HELP, exists=True, dir_okay=False)
@opt.repeated("--hint", _HINT_HELP, opt.HintPoint())
@opt.choice("--hint-spread", HINT_SPREAD_MODES, "region", _SPREAD_HELP)
@opt.number("--tile", click.IntRange(min=8), None, _TILE_HELP)
@opt.number("--tile-overlap", click.IntRange(min=0), 32, "Minimum overlap of neighbouring tiles, in pixels.")
@opt.choice("--precision", PRECISION_CHOICES, "auto", _PRECISION_HELP)
@opt.text("--providers", _PROVIDERS_HELP, metavar="LIST")
@opt.flag("--strict", _STRICT_HELP)
@opt.flag("--overwrite", "Recompute inputs whose output already exists.")
@opt.max_pixels()
@opt.flag(("-q", "--quiet"), "No progress bar.")
@opt.flag(("--ray", "use_ray"), _RAY_HELP)
@opt.text("--ray-address", "With --ray: the cluster to join (default $RAY_ADDRESS, else a local Ray instance).", "ADDR")
@opt.number("--actors", click.IntRange(min=1), None, _ACTORS_HELP)
@opt.number("--gpus-per-actor", click.FloatRange(min=0), 0.0, _GPUS_HELP, show_default=False)
def colorize(**cli: Any) -> None:
    """Colour sketches (or, with --from-photo, photos) given as files or folders (recursive)."""
    inputs, out_dir = cli.pop("inputs"), cli.pop("out_dir")
    use_ray = cli.pop("use_ray")
    ray = {"address": cli.pop("ray_address"), "actors": cli.pop("actors"), "gpus_per_actor": cli.pop("gpus_per_actor")}
    if not use_ray and any(ray.values()):
        raise click.UsageError("--ray-address, --actors and --gpus-per-actor need --ray")
    if (cli["save_sketch"] or cli["sketch_bundle"]) and not cli["from_photo"]:
        raise click.UsageError("--save-sketch and --sketch-bundle need --from-photo")
    if cli["tile"] is not None and cli["tile_overlap"] >= cli["tile"]:
        raise click.UsageError(f"--tile-overlap ({cli['tile_overlap']}) must be smaller than --tile ({cli['tile']})")
    providers = cli.pop("providers")
    hints = _hints(inputs, cli.pop("hints"), cli.pop("hint"), use_ray)
    options = ColorizeOptions(
        providers=[p.strip() for p in providers.split(",") if p.strip()] if providers else None,
        progress=not cli.pop("quiet"),
        hints=hints,
        **cli,
    )
    cli_inputs(inputs, out_dir)
    report: BatchReport
    from .distributed import RayReport  # ray itself is imported only when --ray runs

    try:
        if use_ray:
            from .distributed import RayOptions, colorize_folder

            report = colorize_folder(inputs, out_dir, options, RayOptions(**ray))
        else:
            report = colorize_files(inputs, out_dir, options)
    except click.UsageError:
        raise
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    summary = report.summary() if isinstance(report, RayReport) and report.written else None
    cli_finish(report, out_dir, "image(s)", "failed:", summary)


def _hints(inputs: tuple[Path, ...], scribble: Path | None, points: tuple[Any, ...], use_ray: bool) -> Any:
    """``--hints`` / ``--hint`` checked against the single input image: the scribble's path or the
    points (None without hints); usage errors name the option."""
    if scribble is None and not points:
        return None
    if len(inputs) != 1 or inputs[0].is_dir() or use_ray:
        raise click.UsageError("--hint and --hints need a single input image (not a folder, several inputs or --ray)")
    if scribble is not None and points:
        raise click.UsageError("give --hint or --hints, not both (draw the points into the scribble)")
    from .hints import HintError, read_scribble
    from .imageio import ImageReadError, read_image

    try:
        h, w = read_image(inputs[0]).shape[:2]
    except ImageReadError:
        return scribble or list(points)  # the batch reports the unreadable input
    if scribble is not None:
        try:
            arr = read_scribble(scribble, where=str(scribble))
        except HintError as exc:
            raise click.BadParameter(str(exc), param_hint="'--hints'") from None
        if arr.shape[:2] != (h, w):
            raise click.BadParameter(
                f"{scribble} is {arr.shape[1]}x{arr.shape[0]}, the input image is {w}x{h}; draw it at the image's size",
                param_hint="'--hints'",
            )
        return scribble
    for p in points:
        if not (0 <= p.x < w and 0 <= p.y < h):
            raise click.BadParameter(
                f"{p.x:g},{p.y:g} is outside the {w}x{h} input image (0 <= X < {w}, 0 <= Y < {h})",
                param_hint="'--hint'",
            )
    return list(points)


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
    lines = [
        f"bundle     {b.source}" + (f"  (extracted to {b.path})" if b.source != b.path else ""),
        f"format     {b.format_version}",
        f"name       {b.name}",
        f"task       {b.task}",
    ]
    args = b.architecture.get("args") or {}
    args = {k: v for k, v in args.items() if not (k == "arch" and v == b.arch_name)}
    lines.append(
        f"arch       {b.arch_name}" + ("  " + " ".join(f"{k}={_fmt(v)}" for k, v in args.items()) if args else "")
    )
    size = (
        f"fixed {spec.fixed_size[0]}x{spec.fixed_size[1]}"
        if spec.fixed_size
        else f"size multiple {spec.size_multiple}" + (f", min {spec.min_size}" if spec.min_size > 1 else "")
    )
    lines.append(
        f"input      {spec.name or '-'}: {spec.layout} {spec.channels}ch {spec.color} "
        f"range [{_fmt(spec.range[0])}, {_fmt(spec.range[1])}], {size}"
    )
    if spec.hints is not None:
        lines.append(
            f"hints      {spec.hints.channels}ch {spec.hints.encoding} after the sketch's, "
            f"point radius {spec.hints.point_radius}"
        )
    out = b.manifest.get("output") or {}  # as written, every field the manifest has
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
            lines.append(
                f"            built for {e.describe()}" + (f", CUDA {e.cuda_version}" if e.cuda_version else "")
            )
            for p in e.profiles:
                lines.append(
                    f"            profile {p.get('input', '')}: "
                    f"min {p.get('min')} opt {p.get('opt')} max {p.get('max')}"
                )
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
    if b.degraded:
        reasons = b.manifest.get("degraded_reasons") or {}
        lines.append(
            "DEGRADED   written with --allow-degraded: "
            + ("; ".join(f"{f}: {', '.join(map(str, r))}" for f, r in reasons.items()) or "below a parity threshold")
        )
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
