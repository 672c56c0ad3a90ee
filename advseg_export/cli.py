"""``advseg-export``: a thin click wrapper over :mod:`advseg_export.api`.

advseg-export CHECKPOINT -o sketch2color.advseg --fp16 --int8
advseg-export hed -o ~/.cache/advseg/bundles/hed.advseg
advseg-export CHECKPOINT -o out.advseg --fp16 --trt --max-shape 4x3x1024x1024 --timing-cache trt.cache
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import click

from advseg_sdk import cli_options as opt
from advseg_sdk.vocab import EXPORT_SKETCH_METHODS
from advseg_train.archs import GENERATOR_ARCHS, NORMS

if TYPE_CHECKING:
    from .api import ExportOptions

__all__ = ["main"]

_FC = TypeVar("_FC", bound=Callable[..., Any])


def _shape(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    from .tensorrt_build import parse_shape

    try:
        return parse_shape(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


_SKETCH_HELP = "How parity/calibration sketches are made from the cached photos (generators)."
_NORM_HELP = "How InstanceNorm is written in the graph (decomposed: accurate on ONNX Runtime CPU)."


def _known_errors() -> tuple[type[BaseException], ...]:
    from advseg_sdk.assets import AssetMissingError
    from advseg_sdk.bundle import BundleError
    from advseg_sdk.imageio import ImageReadError

    from .calibration import CalibrationError
    from .onnx_export import ExportError
    from .tensorrt_build import TensorRTUnavailableError

    errors: list[type[BaseException]] = [
        AssetMissingError,
        BundleError,
        ImageReadError,
        CalibrationError,
        ExportError,
        TensorRTUnavailableError,
        FileNotFoundError,
        ValueError,
    ]
    try:
        from advseg_train.checkpoint_formats import CheckpointError

        errors.append(CheckpointError)
    except ImportError:
        pass
    return tuple(errors)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="CHECKPOINT|hed")
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Bundle directory to write (e.g. sketch2color.advseg); replaced if it is a bundle.",
)
@click.option("--fp16", is_flag=True, help="Add model.fp16.onnx (normalisation kept in fp32, fp32 IO).")
@click.option("--int8", is_flag=True, help="Add model.int8.onnx (static QDQ, calibrated on real images).")
@click.option("--trt", is_flag=True, help="Add a TensorRT engine (needs tensorrt and an NVIDIA GPU).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (>= 17).")
@click.option(
    "--calib",
    "calib",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of calibration images for --int8, used as the network's inputs "
    "(sketches for a generator, photos for hed). Default: the cached real photos.",
)
@click.option(
    "--calib-count",
    type=click.IntRange(1, 1000),
    default=16,
    show_default=True,
    help="How many calibration images to use.",
)
@click.option(
    "--calib-method",
    type=click.Choice(["percentile", "minmax", "entropy"]),
    help="How int8 activation ranges are chosen (default: percentile for generators, minmax for hed).",
)
@opt.choice("--sketch-method", EXPORT_SKETCH_METHODS, "xdog", _SKETCH_HELP)
@opt.choice("--instance-norm", ["decomposed", "fused"], "decomposed", _NORM_HELP)
@click.option("--min-shape", callback=_shape, metavar="NxCxHxW", help="TensorRT profile minimum shape.")
@click.option("--opt-shape", callback=_shape, metavar="NxCxHxW", help="TensorRT profile optimal shape.")
@click.option("--max-shape", callback=_shape, metavar="NxCxHxW", help="TensorRT profile maximum shape.")
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TensorRT timing cache file: loaded if present, saved after the build.",
)
@click.option("--trt-hardware-compatible", is_flag=True, help="Build an engine for any Ampere+ GPU (slower).")
@click.option(
    "--allow-degraded",
    is_flag=True,
    help="Write the bundle even if an artefact misses its parity threshold (marked degraded).",
)
@click.option(
    "--arch", type=click.Choice(GENERATOR_ARCHS), help="Generator architecture, when the checkpoint cannot tell."
)
@click.option("--ngf", type=click.IntRange(1), help="Generator width override.")
@click.option("--norm", type=click.Choice(NORMS), help="Generator norm override.")
@click.option("--name", help="Bundle name recorded in the manifest.")
@click.option(
    "--hed-weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="HED .weights.h5 (default: the cached 'hed-bsds500' asset).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only print errors and the bundle path.")
def main(source: str, out_dir: Path, **flags: Any) -> None:
    """Export CHECKPOINT (ours, stock CycleGAN/pix2pix or AdvSegLoss .pth) or the HED edge
    detector (literally `hed`) to an advseg model bundle with parity figures in its manifest."""
    from . import api

    f = SimpleNamespace(**flags)
    options = _export_options(f)
    try:
        if source == "hed":
            if f.arch or f.ngf or f.norm:
                raise click.UsageError("--arch/--ngf/--norm apply to generator checkpoints, not hed")
            path = api.export_hed(out_dir, options, weights=f.hed_weights, name=f.name or "hed")
        else:
            if f.hed_weights is not None:
                raise click.UsageError("--hed-weights only applies to `advseg-export hed`")
            overrides = {k: getattr(f, k) for k in ("arch", "ngf", "norm") if getattr(f, k) is not None}
            path = api.export_generator(source, out_dir, options, overrides=overrides, name=f.name)
    except click.UsageError:
        raise
    except _known_errors() as exc:
        raise click.ClickException(str(exc)) from None
    if not f.quiet:
        _summary(path)
    click.echo(str(path))


def _export_options(f: SimpleNamespace) -> ExportOptions:
    """The :class:`~advseg_export.api.ExportOptions` the flags ask for; refuses flags that do not apply."""
    from .api import ExportOptions
    from .precision import Int8Options

    profile = {k: v for k, v in (("min", f.min_shape), ("opt", f.opt_shape), ("max", f.max_shape)) if v is not None}
    if profile and not f.trt:
        raise click.UsageError("--min-shape/--opt-shape/--max-shape only apply with --trt")
    if f.timing_cache is not None and not f.trt:
        raise click.UsageError("--timing-cache only applies with --trt")
    if f.calib is not None and not f.int8:
        raise click.UsageError("--calib only applies with --int8")
    int8_options = None
    if f.calib_method is not None:
        int8_options = Int8Options(
            calibrate_method={"percentile": "Percentile", "minmax": "MinMax", "entropy": "Entropy"}[f.calib_method]
        )
    return ExportOptions(
        precisions=["fp32"] + (["fp16"] if f.fp16 else []) + (["int8"] if f.int8 else []),
        opset=f.opset,
        calib=f.calib,
        calib_count=f.calib_count,
        sketch_method=f.sketch_method,
        int8_options=int8_options,
        instance_norm=f.instance_norm,
        allow_degraded=f.allow_degraded,
        trt=f.trt,
        trt_profile=profile or None,
        timing_cache=f.timing_cache,
        trt_hardware_compatible=f.trt_hardware_compatible,
        log=None if f.quiet else (lambda msg: click.echo(msg, err=True)),
    )


def _summary(path: Path) -> None:
    import json

    m = json.loads((path / "manifest.json").read_text())
    click.echo(
        f"{m['task']} bundle '{m.get('name')}' ({m['architecture']['name']})"
        + ("  [DEGRADED]" if m.get("degraded") else ""),
        err=True,
    )
    for a in m["artefacts"]:
        p = m.get("parity", {}).get(a["file"], {})
        psnr = p.get("psnr")
        if p.get("nonfinite"):
            fig = f"{p['nonfinite']} NaN/inf outputs"
        elif p.get("max_abs") is not None:
            fig = f"max_abs={p['max_abs']:.3g}  PSNR={'inf' if psnr is None else f'{psnr:.2f}'} dB"
        else:
            fig = "parity not measured"
        click.echo(f"  {a['file']:<40} {a['precision']:<5} {a['bytes'] / 1e6:8.2f} MB  {fig}", err=True)


if __name__ == "__main__":
    sys.exit(main())
