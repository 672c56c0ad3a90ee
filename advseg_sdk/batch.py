"""Batch plumbing shared by the file-processing commands (`advseg sketch`, `advseg colorize`):
which files a set of inputs expands to, where their outputs go, and what a batch did."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["IMAGE_SUFFIXES", "BatchReport", "collect_inputs", "output_names"]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm"}
)


@dataclass
class BatchReport:
    """What a batch did: outputs written, inputs skipped (output existed), failures with reasons."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def collect_inputs(inputs: Iterable[str | os.PathLike], exclude: str | os.PathLike | None = None) -> list[Path]:
    """Expand files and folders (recursively, image suffixes only) into a sorted, unique file list.

    Files found in folders under ``exclude`` (the output folder) are skipped, so sketching a
    folder into a subfolder of itself does not pick up earlier outputs.

    Files named explicitly are kept whatever their suffix (so a bad file is reported, not ignored).
    A path that does not exist raises ``FileNotFoundError``.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    skip = Path(exclude).resolve() if exclude is not None else None
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                and not (skip is not None and f.resolve().is_relative_to(skip))
            )
        elif p.is_file():
            found = [p]
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def output_names(files: Sequence[Path], out_dir: Path, suffix: str = ".png") -> list[Path]:
    """``<stem><suffix>`` per input; inputs sharing a stem get ``<stem>_<n><suffix>`` so none is overwritten."""
    counts: dict[str, int] = {}
    names = []
    for f in files:
        n = counts.get(f.stem.lower(), 0)
        counts[f.stem.lower()] = n + 1
        names.append(out_dir / (f"{f.stem}{suffix}" if n == 0 else f"{f.stem}_{n}{suffix}"))
    return names
