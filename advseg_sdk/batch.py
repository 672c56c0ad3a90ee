"""Batch plumbing shared by the file-processing commands (`advseg sketch`, `advseg colorize`):
which files a set of inputs expands to, where their outputs go, and what a batch did."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .files import IMAGE_SUFFIXES, is_image_file

__all__ = [
    "IMAGE_SUFFIXES",
    "BatchReport",
    "Plan",
    "collect_inputs",
    "cli_inputs",
    "plan_outputs",
    "clean_stale_parts",
    "pending_jobs",
]


@dataclass
class BatchReport:
    """What a batch did: outputs written, inputs skipped (output existed), failures with reasons."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _scan(p: Path, skip: Path | None) -> list[Path]:
    return sorted(
        f for f in p.rglob("*") if is_image_file(f) and not (skip is not None and f.resolve().is_relative_to(skip))
    )


def _excluded(folder: Path, out_dir: Path | None) -> Path | None:
    """The output folder is left out of a folder scan only when it lies strictly inside it
    (``photos/ -o photos/sketches``); ``par/in -o par`` scans all of ``par/in``."""
    if out_dir is None:
        return None
    out, src = Path(out_dir).resolve(), folder.resolve()
    return out if out != src and out.is_relative_to(src) else None


def _expand(inputs: Iterable[str | os.PathLike], out_dir: Path | None) -> list[tuple[Path, Path]]:
    """(file, folder of its output relative to ``out_dir``) per input, unique, in a stable order."""
    out: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = [(f, f.parent.relative_to(p)) for f in _scan(p, _excluded(p, out_dir))]
        elif p.is_file():
            found = [(p, Path())]
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
        for f, rel in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append((f, rel))
    return out


def collect_inputs(inputs: Iterable[str | os.PathLike], exclude: str | os.PathLike | None = None) -> list[Path]:
    """Expand files and folders (recursively, image suffixes only) into a sorted, unique file list.

    Hidden files (and so the ``.part`` temporaries a killed run leaves) are not picked up from
    folders. Files under ``exclude`` (the output folder) are skipped when it lies inside a scanned
    folder, so sketching a folder into a subfolder of itself does not pick up earlier outputs.

    Files named explicitly are kept whatever their suffix (so a bad file is reported, not ignored).
    A path that does not exist raises ``FileNotFoundError``.
    """
    return [f for f, _ in _expand(inputs, None if exclude is None else Path(exclude))]


def cli_inputs(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """:func:`collect_inputs` for a command line: a missing path or no images at all is a usage
    error on ``INPUTS`` (exit code 2) that says which."""
    import click

    try:
        found = collect_inputs(inputs, exclude=out_dir)
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="INPUTS") from None
    if not found:
        raise click.BadParameter(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {', '.join(map(str, inputs))}",
            param_hint="INPUTS",
        )
    return found


def cli_finish(
    report: BatchReport, out_dir: Path, wrote: str, failed: str, summary: str | None = None, reasons: bool = True
) -> None:
    """Tell a command-line user what a batch did, and exit 1 if any input failed.

    ``wrote`` names the outputs (``image(s)``), ``failed`` heads the list of failed inputs, listed
    with their reasons unless ``reasons`` is off (they were printed as they happened).
    """
    import click

    if report.skipped:
        n = len(report.skipped)
        click.echo(f"skipped {n} input(s) whose output exists in {out_dir} (use --overwrite)", err=True)
    click.echo(f"wrote {len(report.written)} {wrote} to {out_dir}")
    if summary:
        click.echo(summary)
    if report.failed:
        click.echo(f"{len(report.failed)} input(s) {failed}", err=True)
        for f, reason in report.failed:
            line = (reason if str(f) in reason else f"{f}: {reason}") if reasons else str(f)
            click.echo(f"  {line}", err=True)
        sys.exit(1)


def _key(p: Path) -> str:
    """Identity of a path on any disk, case-insensitive ones included."""
    return os.path.normcase(os.path.abspath(p)).casefold()


@dataclass
class Plan:
    """Which input goes to which output(s), and the inputs refused with the reason."""

    jobs: list[tuple[Path, Path]] = field(default_factory=list)  # (input, main output)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def plan_outputs(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    suffix: str = ".png",
    sidecars: Sequence[str] = (),
) -> Plan:
    """Map every input to ``out_dir/<subfolder>/<stem><suffix>`` (plus ``<stem><sidecar>`` files).

    The mapping depends on each input alone, so adding a file never moves another one's output;
    files found in subfolders of an input folder keep their subfolder. Inputs whose outputs would
    coincide (``a.jpg`` and ``a.png``; names that differ only in case; a sidecar name that is
    another input's output) and inputs whose output would be an input file are refused, never
    renamed or overwritten.
    """
    out_dir = Path(out_dir)
    files = _expand(inputs, out_dir)
    input_keys = {_key(f.resolve()): f for f, _ in files}
    owners: dict[str, list[Path]] = {}
    outputs: dict[Path, list[Path]] = {}
    for f, rel in files:
        names = [out_dir / rel / f"{f.stem}{ext}" for ext in (suffix, *sidecars)]
        outputs[f] = names
        for t in names:
            owners.setdefault(_key(t), []).append(f)
    plan = Plan()
    for f, _ in files:
        reason = None
        for t in outputs[f]:
            hit = input_keys.get(_key(t.resolve() if t.exists() else t))
            if hit is not None:
                reason = (
                    f"{f}: its output {t} would replace the input {hit}; choose another -o"
                    if hit != f
                    else f"{f}: its output would replace the input itself; choose another -o"
                )
                break
            clash = owners[_key(t)]
            if len(clash) > 1:
                reason = f"{f}: {' and '.join(map(str, clash))} would both be written to {t}; rename one of them"
                break
        if reason:
            plan.refused.append((f, reason))
        else:
            plan.jobs.append((f, outputs[f][0]))
    return plan


def make_out_dir(out_dir: Path) -> None:
    """Create the output folder up front, so a bad ``-o`` is one clear error before any work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".advseg-probe-")
        probe.close()
    except OSError as exc:
        raise ValueError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None


#: A ``.part`` temporary older than this was left by a killed run (a write takes seconds).
STALE_PART_SECONDS = 600


def clean_stale_parts(folders: Iterable[Path], older_than: float = STALE_PART_SECONDS) -> list[Path]:
    """Remove the ``.<name>.XXXXXXXX.part<suffix>`` temporaries of killed runs from output folders.

    Only old ones: a younger one may belong to a run that is still writing.
    """
    import re
    import time

    pattern = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part(\.[A-Za-z0-9]+)?$")
    now, removed = time.time(), []
    for d in set(folders):
        if not d.is_dir():
            continue
        for p in d.iterdir():
            try:
                if (
                    pattern.match(p.name)
                    and p.is_file()
                    and not p.is_symlink()
                    and now - p.stat().st_mtime > older_than
                ):
                    p.unlink()
                    removed.append(p)
            except OSError:
                continue  # gone already, or not ours to remove
    return removed


def pending_jobs(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    suffix: str = ".png",
    sidecars: Sequence[str] = (),
    overwrite: bool = False,
    err: TextIO | None = None,
) -> tuple[BatchReport, list[tuple[Path, Path]]]:
    """The (input, output) pairs still to do, and a report of the rest: refused inputs (their
    output would replace an input or another input's output) are failed and printed to ``err``;
    inputs whose output exists are skipped unless ``overwrite``. When work remains, the output
    folder exists and stale temporaries of killed runs are gone."""
    err = err if err is not None else sys.stderr
    plan = plan_outputs(inputs, Path(out_dir), suffix, sidecars=tuple(sidecars))
    report = BatchReport()
    for f, reason in plan.refused:
        report.failed.append((f, reason))
        print(f"error: {reason}", file=err)
    todo = []
    for f, t in plan.jobs:
        if t.exists() and not overwrite:
            report.skipped.append(f)
        else:
            todo.append((f, t))
    if todo:
        make_out_dir(Path(out_dir))
        clean_stale_parts({t.parent for _, t in todo})
    return report, todo
