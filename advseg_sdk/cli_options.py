"""Option builders for the command lines: the declarations several commands share, one line each.

A command's option list then reads as a table (flag, type, default, help), and an option that
two commands take (inputs, output folder, bundle paths, the pixel limit) is declared once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .vocab import SKETCH_METHODS

__all__ = [
    "SKETCH_METHODS",
    "HintPoint",
    "choice",
    "flag",
    "input_paths",
    "max_pixels",
    "number",
    "optional_path",
    "output_folder",
    "repeated",
    "text",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class HintPoint(click.ParamType):
    """``X,Y,#RRGGBB``: one colour hint at pixel (X, Y); a malformed one is a usage error naming the option."""

    name = "X,Y,#RRGGBB"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .hints import Hint, HintError, parse_hint_text

        if isinstance(value, Hint):
            return value
        try:
            return parse_hint_text(value)
        except HintError as exc:
            self.fail(str(exc), param, ctx)


def input_paths() -> Decorator:
    """INPUTS: files or folders (searched recursively)."""
    return click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))


def output_folder(help: str, *flags: str) -> Decorator:
    """A required output folder, bound to ``out_dir`` (flags default to ``-o/--out``)."""
    decls = flags or ("-o", "--out")
    return click.option(*decls, "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help=help)


def optional_path(decls: str | Sequence[str], help: str, **kwargs: Any) -> Decorator:
    """A path that may be left out (``None``); ``kwargs`` refine ``click.Path``'s checks."""
    names = (decls,) if isinstance(decls, str) else tuple(decls)
    return click.option(*names, type=click.Path(path_type=Path, **kwargs), default=None, help=help)


def choice(decls: str | Sequence[str], choices: Sequence[str], default: str, help: str | None = None) -> Decorator:
    """One of ``choices``, its default shown in ``--help``."""
    names = (decls,) if isinstance(decls, str) else tuple(decls)
    kind = click.Choice(list(choices))
    return click.option(*names, type=kind, default=default, show_default=True, help=help)


def number(
    decls: str | Sequence[str], kind: click.ParamType, default: Any, help: str | None = None, show_default: bool = True
) -> Decorator:
    """A bounded number (``click.IntRange`` / ``FloatRange``); a default other than ``None`` is shown."""
    names = (decls,) if isinstance(decls, str) else tuple(decls)
    return click.option(
        *names, type=kind, default=default, show_default=show_default and default is not None, help=help
    )


def repeated(decls: str | Sequence[str], help: str, kind: click.ParamType | None = None) -> Decorator:
    """An option that may be given several times (a tuple of values)."""
    names = (decls,) if isinstance(decls, str) else tuple(decls)
    return click.option(*names, multiple=True, type=kind, help=help)


def flag(decls: str | Sequence[str], help: str) -> Decorator:
    """An on/off switch."""
    names = (decls,) if isinstance(decls, str) else tuple(decls)
    return click.option(*names, is_flag=True, help=help)


def text(decls: str | Sequence[str], help: str, metavar: str | None = None) -> Decorator:
    """A free-form string that may be left out."""
    names = (decls,) if isinstance(decls, str) else tuple(decls)
    return click.option(*names, default=None, metavar=metavar, help=help)


def max_pixels() -> Decorator:
    """``--max-pixels``: the largest image a command reads."""
    return number(
        "--max-pixels",
        click.IntRange(min=1),
        None,
        "Refuse images with more pixels than this (default 64 MP or $ADVSEG_MAX_PIXELS).",
    )
