"""``advseg-train``: a thin click wrapper over :func:`advseg_train.trainer.train`.

Examples::

    advseg-train --preset official-cyclegan --data.root datasets/bedroom --out runs/bedroom
    advseg-train --config my.yaml --set model.ngf=32 --set seg.variant=binary --resume --out runs/x
    torchrun --nproc_per_node 4 -m advseg_train.cli --preset paper --data.root D --out runs/ddp
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

__all__ = ["main"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option(
    "--preset", type=str, default=None, help="official-cyclegan | official-pix2pix | paper | paper-pix2pix | demo."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set model.ngf=32 (repeatable).",
)
@click.option(
    "--data.root",
    "data_root",
    type=click.Path(file_okay=False),
    default=None,
    help="Dataset folder (same as --set data.root=DIR).",
)
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (run.out).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoints/latest.pt if it exists.")
@click.option(
    "--seg-grad",
    type=click.Choice(["soft", "hard"]),
    default=None,
    help="soft: the generator gets the segmentation gradient (default); hard: official, none.",
)
@click.option("--device", type=str, default=None, help="auto | cpu | cuda | cuda:N.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as YAML and exit.")
def main(**flags: Any) -> None:
    """Train a sketch→colour generator (CycleGAN / Pix2Pix) with the adversarial segmentation loss."""
    from .config import ConfigError, dump_yaml, resolve_config

    f = SimpleNamespace(**flags)
    extra = list(f.overrides)
    for key, value in (
        ("data.root", f.data_root),
        ("run.out", f.out),
        ("run.resume", "true" if f.resume else None),
        ("seg.grad", f.seg_grad),
        ("run.device", f.device),
        ("run.max_steps", f.max_steps),
    ):
        if value is not None:
            extra.append(f"{key}={value}")
    try:
        cfg = resolve_config(f.config_file, f.preset, extra)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if f.print_config:
        click.echo(dump_yaml(cfg), nl=False)
        return
    problem = _run_dir_problem(Path(cfg.run.out), cfg.run.resume)
    if problem:
        click.echo(f"advseg-train: error: {problem}", err=True)
        sys.exit(2)

    from advseg_sdk.assets import AssetMissingError

    from .data import DataError
    from .train_state import CheckpointLoadError
    from .trainer import TrainingDivergedError, train

    try:
        result = train(cfg)
    except TrainingDivergedError as exc:
        click.echo(f"advseg-train: {exc}", err=True)
        sys.exit(3)
    except ImportError as exc:  # an optional backend (detectron2, transformers) is missing
        click.echo(
            f"advseg-train: error: {exc}\nOr choose another segmenter: --set seg.segmenter="
            "isnet (fg/bg, offline weights) | tiny (tests) | mask2former | oneformer, "
            "or --set seg.variant=none.",
            err=True,
        )
        sys.exit(2)
    except (DataError, CheckpointLoadError, AssetMissingError, ConfigError, ValueError) as exc:
        click.echo(f"advseg-train: error: {exc}", err=True)
        sys.exit(2)
    if result.generator is not None:
        click.echo(f"generator: {result.generator}")
        click.echo(f"checkpoint: {result.checkpoint}")


#: What makes a folder a run that a new run would overwrite.
_RUN_FILES = ("checkpoints/latest.pt", "generator.safetensors")


def _run_dir_problem(run_dir: Path, resume: bool) -> str | None:
    """Why training into ``run_dir`` must not start: it holds a run and ``--resume`` is not set
    (a new run would replace its checkpoint and generator), or it cannot be created."""
    if not resume:
        found = [f for f in _RUN_FILES if (run_dir / f).exists()]
        if found:
            again = " ".join(a for a in sys.argv[1:] if a != "--resume")
            return (
                f"{run_dir} already holds a run ({found[0]}); continue it with "
                f"`advseg-train {again} --resume`, or choose a new --out"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the run folder {run_dir}: {exc.strerror or exc}"
    return None


if __name__ == "__main__":
    main()
