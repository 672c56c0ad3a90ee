"""The Table 1 command: ``python -m experiments.table1`` (see :mod:`experiments.table1`)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from advseg_sdk.vocab import SKETCH_METHODS

from .grid import ARMS, SCALES, SCHEMES, Grid, Settings
from .runner import run_table

__all__ = ["main"]

# --------------------------------------------------------------------------- entry points


def _split(value: str, known: Iterable[str] | None, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if known is not None:
        bad = [v for v in items if v not in known]
        if bad:
            raise click.BadParameter(f"unknown {what} {', '.join(bad)}; choose from {', '.join(known)}")
    if not items:
        raise click.BadParameter(f"no {what} given")
    return items


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="cpu-small",
    help="gpu: the paper's 256² recipe; cpu-small: fits one CPU core; tiny: tests only.",
)
@click.option(
    "--datasets",
    default="landscapes",
    help="Comma-separated: landscapes, animals, interiors, illustrations.",
)
@click.option("--schemes", default="pix2pix", help="Comma-separated: pix2pix, cycle_gan.")
@click.option(
    "--arms",
    default="baseline,binary-soft,binary-hard",
    help=f"Comma-separated: {', '.join(ARMS)}, or 'all'.",
)
@click.option("--seeds", default="0", help="Comma-separated integers.")
@click.option(
    "--segmenter",
    default="deeplab-voc",
    help="seg.segmenter of every segmentation arm (multi / both need a multi-class one).",
)
@click.option("--sketch", type=click.Choice(SKETCH_METHODS), default="hed")
@click.option("--lambda-seg", type=float, help="seg.lambda_seg (default: the preset's).")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE", help="Extra advseg-train override (repeatable).")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads in every step.")
@click.option("--device", help="run.device for training (default: auto).")
@click.option("--test-limit", type=click.IntRange(2), help="Score at most this many test photos.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/table"),
    help="Results root: one run directory per cell.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/results.md"),
    help="Markdown report; contact sheets go to a folder of its name beside it.",
)
@click.option(
    "--notes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Markdown to include as 'What the numbers support'.",
)
@click.option(
    "--report-only",
    is_flag=True,
    help="Run nothing: write the file from the runs already scored (the others are listed as missing).",
)
def main(**options: Any) -> None:
    """Train, export and score every (dataset, scheme, arm, seed); write the results table."""
    from advseg_sdk.datasets import DATASETS

    o = options
    arm_list = list(ARMS) if o["arms"].strip() == "all" else _split(o["arms"], ARMS, "arm")
    try:
        seed_list = [int(s) for s in _split(o["seeds"], None, "seed")]
    except ValueError:
        raise click.BadParameter(f"--seeds must be integers, got {o['seeds']!r}") from None
    settings = Settings(
        SCALES[o["scale"]],
        o["segmenter"],
        o["sketch"],
        o["lambda_seg"],
        tuple(o["extra"]),
        o["threads"],
        o["test_limit"],
        o["device"],
    )
    argv, skip = [], False
    for a in sys.argv[1:]:  # the command that reproduces the table, without report-only switches
        if skip or a == "--report-only":
            skip = False
            continue
        if a == "--notes":
            skip = True
            continue
        if not a.startswith("--notes="):
            argv.append(a)
    invocation = shlex.join(["python", "-m", "experiments.table1", *argv])
    grid = Grid(
        tuple(_split(o["datasets"], DATASETS, "dataset")),
        tuple(_split(o["schemes"], SCHEMES, "scheme")),
        tuple(arm_list),
        tuple(seed_list),
    )
    notes = o["notes"]
    run_table(grid, settings, o["root"], o["out"], invocation, notes.read_text() if notes else None, o["report_only"])
