"""``advseg-bench``: thin click wrappers over :mod:`advseg_bench.runner`, ``compare``, ``scale``.

advseg-bench run [--model resnet_9blocks,unet_256,hed,pipeline] [--backends all]
                 [--precisions fp32,fp16,bf16,int8] [--batch 1,8,32] [--sizes 256,512,1024]
                 [--threads N] [-o DIR] [--name STEM]
advseg-bench compare A.json B.json
advseg-bench scale [--model resnet_9blocks] [--sizes 256,512,1024,1536,2048] [--tile-limit 1024]
advseg-bench report RESULTS.json        # re-render the markdown and plots
"""

from __future__ import annotations

import datetime as _dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from advseg_sdk.vocab import ONNX_PRECISIONS

from . import schema
from .backends import BACKENDS, PRECISIONS
from .environment import machine_slug

__all__ = ["main"]


def _ints(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not out or any(v < 1 for v in out):
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return sorted(set(out))


def _choices(allowed: tuple[str, ...], all_word: str = "all"):
    def cb(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        if items == [all_word]:
            return list(allowed)
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            raise click.BadParameter(
                f"unknown {param.name} {bad or value!r}; choose from {', '.join(allowed)} or '{all_word}'"
            )
        return list(dict.fromkeys(items))

    return cb


def _stem(name: str | None, kind: str) -> str:
    if name:
        return name
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{machine_slug()}-{kind}-{stamp}"


def _fail(msg: str) -> NoReturn:
    click.echo(f"advseg-bench: error: {msg}", err=True)
    sys.exit(2)


def _measure(
    configure: Callable[[dict[str, Any], list[str]], Any],
    run: Callable[[Any], dict[str, Any]],
    options: dict[str, Any],
    kind: str,
) -> tuple[dict[str, Any], list[Path]]:
    """Options -> config (a bad one is a clear error), run it, write its documents."""
    try:
        cfg = configure(options, ["advseg-bench", *sys.argv[1:]])
    except Exception as exc:
        _fail(str(exc))
    try:
        doc = run(cfg)
    except RuntimeError as exc:
        _fail(str(exc))
    return doc, _write_documents(doc, Path(options["out_dir"]), _stem(options["name"], kind), with_json=True)


def _write_documents(doc: dict[str, Any], out: Path, stem: str, with_json: bool) -> list[Path]:
    """The JSON (``with_json``), the markdown and the plots of a results document, in ``out``."""
    from advseg_sdk.files import atomic_write_text

    from .plots import write_plots
    from .report import write_markdown
    from .scale import render_scale_markdown, write_scale_plot

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path | None] = [schema.write(out / f"{stem}.json", doc)] if with_json else []
    if doc["kind"] == "scale":
        paths += [
            atomic_write_text(out / f"{stem}.md", render_scale_markdown(doc)),
            write_scale_plot(doc, out / f"{stem}.png"),
        ]
    else:
        paths += [write_markdown(doc, out / f"{stem}.md"), *write_plots(doc, out, stem)]
    return [p for p in paths if p]


def _echo_written(paths: list[Path]) -> None:
    for p in paths:
        click.echo(f"wrote {p}")


def _out_option(**attrs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--out DIR`` (the ``out_dir`` parameter)."""
    return click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), **attrs)


#: where ``run`` and ``scale`` write their documents
_results_out = _out_option(default="advseg-bench-results")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main() -> None:
    """Latency and throughput of advseg models across backends, precisions, batches and sizes.

    Each backend x precision runs in its own process; results go to JSON (schema advseg-bench/1),
    a markdown table and PNG plots."""


@main.command("run")
@click.option(
    "-m",
    "--model",
    "models",
    default="resnet_9blocks,unet_256,hed,pipeline",
    help="Comma-separated: generator architectures (random init), hed, pipeline, checkpoint:PATH, bundle:PATH.",
)
@click.option("--ngf", default=64, type=click.IntRange(1), help="Generator width for random-init architectures.")
@click.option("--norm", default="instance", type=click.Choice(["instance", "batch", "none"]))
@click.option(
    "--backends",
    default="all",
    callback=_choices(tuple(BACKENDS)),
    help=f"Comma-separated from: {', '.join(BACKENDS)}.",
)
@click.option("--precisions", default="all", callback=_choices(PRECISIONS))
@click.option("--batch", "batches", default="1,8,32", callback=_ints)
@click.option("--sizes", default="256,512,1024", callback=_ints, help="Square resolutions in px.")
@click.option("--threads", type=click.IntRange(1), help="Threads per backend (default: all cores).")
@click.option(
    "--device",
    default="auto",
    type=click.Choice(["auto", "cpu"]),
    help="Where torch backends run (auto: CUDA when present).",
)
@click.option("--warmup", default=2, type=click.IntRange(0))
@click.option("--repeats", default=10, type=click.IntRange(1), help="Timed calls at least ...")
@click.option("--min-time", default=1.0, type=float, help="... and at least this many seconds ...")
@click.option(
    "--max-time",
    default=30.0,
    type=float,
    help="... but stop after this many seconds once --min-repeats calls are done.",
)
@click.option("--min-repeats", default=3, type=click.IntRange(1))
@click.option(
    "--max-call-s",
    default=60.0,
    type=float,
    help="Skip combinations whose one call would take longer, judged from FLOPs at the measured peak.",
)
@click.option(
    "--memory-budget-gb",
    type=float,
    help="Skip combinations estimated above this (default: 80% of free RAM).",
)
@click.option("--combo-timeout-s", default=900.0, type=float)
@click.option(
    "--compile-mode",
    default="default",
    type=click.Choice(["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]),
)
@click.option("--seed", default=0, type=int, help="Seed of random-init weights.")
@click.option(
    "--peak-seconds",
    default=1.0,
    type=click.FloatRange(0.05),
    help="Time spent measuring each dtype's matrix-product peak.",
)
@_results_out
@click.option("--name", help="File stem (default: <machine>-matrix-<time>).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run_cmd(**options: Any) -> None:
    """Measure the matrix and write JSON, markdown and PNG plots."""
    from .runner import BenchRunConfig, run_matrix

    doc, paths = _measure(BenchRunConfig.from_cli, run_matrix, options, "matrix")
    counts = {s: sum(r["status"] == s for r in doc["results"]) for s in schema.STATUSES}
    click.echo(f"{counts['ok']} measured, {counts['skipped']} skipped, {counts['error']} errors")
    for t in doc.get("targets") or []:
        met = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        val = f"{t['value']:.2f}x" if t["value"] is not None else "–"
        click.echo(f"target {t['name']}: {val} (>= {t['target']}x) {met}")
    _echo_written(paths)


@main.command("compare")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_cmd(a: str, b: str, as_json: bool) -> None:
    """Ratios between two result files: speedup = A median latency / B median latency."""
    import json

    from .compare import compare_docs, format_comparison

    try:
        da, db = schema.load(a), schema.load(b)
    except schema.ResultsError as exc:
        _fail(str(exc))
    cmp = compare_docs(da, db)
    if as_json:
        click.echo(schema.dumps(cmp) if cmp else json.dumps({}))
    else:
        click.echo(format_comparison(cmp, Path(a).stem, Path(b).stem))


@main.command("report")
@click.argument("results", type=click.Path())
@_out_option(help="Where to write (default: beside the JSON).")
def report_cmd(results: str, out_dir: str | None) -> None:
    """Re-render the markdown and PNG plots of a results JSON."""
    try:
        doc = schema.load(results)
    except schema.ResultsError as exc:
        _fail(str(exc))
    src = Path(results)
    out = Path(out_dir) if out_dir else src.parent
    _echo_written(_write_documents(doc, out, src.stem, with_json=False))


@main.command("scale")
@click.option(
    "-m",
    "--model",
    "model",
    default="resnet_9blocks",
    help="A generator architecture (random init), checkpoint:PATH or bundle:PATH.",
)
@click.option("--ngf", default=64, type=click.IntRange(1))
@click.option("--backend", default="ort-cpu", type=click.Choice(["ort-cpu", "ort-cuda", "ort-trt"]))
@click.option("--precision", default="fp32", type=click.Choice(ONNX_PRECISIONS))
@click.option("--sizes", default="256,512,1024,1536,2048", callback=_ints)
@click.option("--tile-limit", default=1024, type=click.IntRange(8), help="Sizes above this run tiled.")
@click.option("--tile", default=512, type=click.IntRange(8))
@click.option("--overlap", default=32, type=click.IntRange(0))
@click.option("--untiled-too", is_flag=True, help="Also run the tiled sizes whole (memory permitting).")
@click.option("--threads", type=click.IntRange(1))
@click.option("--warmup", default=1, type=click.IntRange(0))
@click.option("--repeats", default=3, type=click.IntRange(1))
@click.option("--max-time", default=60.0, type=float)
@click.option("--timeout-s", default=1800.0, type=float)
@click.option("--memory-budget-gb", type=float)
@_results_out
@click.option("--name", default=None)
def scale_cmd(**options: Any) -> None:
    """Latency per megapixel from small to large images, tiled above --tile-limit."""
    from .scale import ScaleConfig, run_scale

    doc, paths = _measure(ScaleConfig.from_cli, run_scale, options, "scale")
    for r in doc["results"]:
        if r["status"] == "ok":
            d = r["details"]
            click.echo(
                f"{r['size']:>5}px {'tiled' if d['tiled'] else 'whole'}: p50 {r['latency_ms']['p50']:.0f} ms, "
                f"{d['ms_per_megapixel']:.0f} ms/MP, peak RSS {r['peak_rss_mb']:.0f} MB"
            )
        else:
            click.echo(f"{r['size']:>5}px: {r['status']}: {r['reason']}")
    _echo_written(paths)


if __name__ == "__main__":
    main()
