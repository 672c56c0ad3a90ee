"""Running the cells of the Table 1 grid: train, export and score each one through the public
commands (``advseg-train``, ``advseg-export``, ``advseg-eval colour``), each step skipped when its
output exists, then the results file.

The steps run as subprocesses, not through the Python APIs, on purpose: each step's CPU time is
measured from its own process (``RUSAGE_CHILDREN``), its whole output (C libraries included) goes
to the run's ``table.log``, torch's thread pool and random state start fresh in every step, and
``table.json`` records the exact command a user can rerun.
"""

from __future__ import annotations

import fcntl
import json
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from advseg_sdk.files import atomic_write_text

from .grid import Cell, Grid, Settings, segmenter_problem

__all__ = ["RunRecord", "finished_cell", "run_cell", "run_table"]

# --------------------------------------------------------------------------- running


def _exe(name: str) -> str:
    """The console script installed beside this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise click.ClickException(f"{name} not found beside {sys.executable} or on PATH; install advseg[all]")
    return found


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` (its first word resolved to the venv's script), output appended to ``log``;
    (wall seconds, CPU seconds). CPU time is kept because on a shared machine wall time also
    counts other people's work. A failure raises with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started, cpu0 = time.perf_counter(), _children_cpu_s()
    with open(log, "a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.run([_exe(cmd[0]), *cmd[1:]], stdout=f, stderr=subprocess.STDOUT)
    seconds, cpu = time.perf_counter() - started, _children_cpu_s() - cpu0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise click.ClickException(f"{cmd[0]} failed (exit {proc.returncode}); log {log}:\n{tail}")
    return seconds, cpu


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


@dataclass
class RunRecord:
    """One run's state after this invocation."""

    cell: Cell
    run_dir: Path
    trained_now: bool
    evaluated_now: bool
    timing: dict[str, float]
    train_command: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def finished_cell(cell: Cell, settings: Settings, root: Path) -> RunRecord | None:
    """The record of a cell that is already scored (with these settings), else None."""
    run_dir = cell.run_dir(root, settings.scale)
    meta = _read_json(run_dir / "table.json")
    summary = _read_json(run_dir / "eval" / "summary.json")
    eval_cmd = settings.eval_command(cell, run_dir / "model.advseg", run_dir / "eval")
    if not summary or meta.get("identity") != settings.identity(cell) or meta.get("eval_command") != eval_cmd:
        return None
    return RunRecord(cell, run_dir, False, False, dict(meta.get("seconds", {})), meta["train_command"], summary)


def run_cell(cell: Cell, settings: Settings, root: Path, echo=click.echo) -> RunRecord:
    """Train, export and evaluate one cell, each step skipped when its output exists.

    The run directory is locked meanwhile, so several invocations over one root (e.g. one per
    core, arms in different orders) never work on the same run: a second one waits, then reuses."""
    run_dir = cell.run_dir(root, settings.scale)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo(f"[table] wait    {cell.name} (another invocation is on it)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _run_cell_locked(cell, settings, run_dir, echo)


def _run_cell_locked(cell: Cell, settings: Settings, run_dir: Path, echo) -> RunRecord:
    meta_path = run_dir / "table.json"
    meta = _read_json(meta_path)
    ident = settings.identity(cell)
    if meta.get("identity") not in (None, ident):
        raise click.ClickException(
            f"{run_dir} was trained with other settings ({meta['identity']}); use another --root "
            "or delete that run directory"
        )
    meta["identity"] = ident
    meta.setdefault("seconds", {})
    log = run_dir / "table.log"
    generator = run_dir / "generator.safetensors"
    train_cmd = settings.train_command(cell, run_dir)
    meta["train_command"] = train_cmd
    trained_now = evaluated_now = False

    if not generator.is_file():
        echo(f"[table] train   {cell.name}")
        seconds, cpu = _run(train_cmd, log)
        meta["seconds"]["train"] = meta["seconds"].get("train", 0.0) + seconds
        meta["seconds"]["train_cpu"] = meta["seconds"].get("train_cpu", 0.0) + cpu
        _write_json(meta_path, meta)
        trained_now = True
    bundle = run_dir / "model.advseg"
    if not (bundle / "manifest.json").is_file():
        echo(f"[table] export  {cell.name}")
        cmd = [
            "advseg-export",
            str(generator),
            "-o",
            str(bundle),
            "--name",
            f"{cell.dataset}-{cell.scheme}-{cell.arm.name}",
        ]
        meta["export_command"] = cmd
        meta["seconds"]["export"], meta["seconds"]["export_cpu"] = _run(cmd, log)
        _write_json(meta_path, meta)
    eval_dir = run_dir / "eval"
    eval_cmd = settings.eval_command(cell, bundle, eval_dir)
    if eval_dir.exists() and (trained_now or meta.get("eval_command") != eval_cmd):
        shutil.rmtree(eval_dir)  # scores of an earlier generator, or of other test settings
    if not (eval_dir / "summary.json").is_file():
        if eval_dir.exists():
            shutil.rmtree(eval_dir)  # an evaluation that was interrupted
        echo(f"[table] score   {cell.name}")
        meta["eval_command"] = eval_cmd
        meta["seconds"]["eval"], meta["seconds"]["eval_cpu"] = _run(eval_cmd, log)
        evaluated_now = True
    _write_json(meta_path, meta)
    return RunRecord(
        cell,
        run_dir,
        trained_now,
        evaluated_now,
        dict(meta["seconds"]),
        train_cmd,
        _read_json(eval_dir / "summary.json"),
    )


def run_table(
    grid: Grid,
    settings: Settings,
    root: Path,
    out: Path,
    invocation: str,
    notes: str | None = None,
    report_only: bool = False,
    echo: Callable[[str], Any] = click.echo,
) -> tuple[Path, list[RunRecord]]:
    """Every cell of ``grid`` (seeds outermost, so one full seed finishes first), then the file. With
    ``report_only`` nothing runs: the file is written from the cells already scored."""
    problem = segmenter_problem(settings.segmenter, grid.arms)
    if problem:
        raise click.ClickException(problem)
    from advseg_sdk.datasets import fetch_dataset

    from .report import write_results

    for d in grid.datasets:  # a no-op when built; from scratch, built from the pinned packages
        fetch_dataset(d)
    started = time.perf_counter()
    records: list[RunRecord] = []
    missing: list[str] = []
    for cell in grid.cells():
        if report_only:
            rec = finished_cell(cell, settings, root)
            if rec is None:
                missing.append(cell.name)
            else:
                records.append(rec)
        else:
            records.append(run_cell(cell, settings, root, echo))
    if not records:
        raise click.ClickException(f"no finished runs under {root} for these settings")
    wall = time.perf_counter() - started
    trained = sum(r.trained_now for r in records)
    echo(
        f"[table] {len(records)} runs: trained {trained}, scored {sum(r.evaluated_now for r in records)}, "
        f"{len(records) - trained} reused; {wall / 60:.1f} min"
    )
    if missing:
        echo(f"[table] not finished (left out of the file): {', '.join(missing)}")
    path = write_results(out, records, settings, grid, invocation, notes, missing)
    echo(f"[table] wrote {path}")
    return path, records
