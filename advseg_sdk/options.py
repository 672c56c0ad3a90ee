"""Options objects: a function takes one dataclass of settings and still accepts its fields as
keywords, so call sites stay short and the settings are documented in one place."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["with_overrides"]

_Options = TypeVar("_Options")


def with_overrides(cls: type[_Options], options: _Options | None, overrides: dict[str, Any]) -> _Options:
    """``options`` (default ``cls()``) with ``overrides`` applied; an unknown name is a clear error.

    Lets a function take one options dataclass and still accept its fields as keywords.
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(
            f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
        )
    return dataclasses.replace(options if options is not None else cls(), **overrides)  # type: ignore[type-var]
