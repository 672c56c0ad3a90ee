"""`advseg-train --out` never replaces an existing run silently, and a bad --out is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TRAIN = Path(sys.executable).parent / "advseg-train"


def _train(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TRAIN), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.parametrize("existing", ["checkpoints/latest.pt", "generator.safetensors"])
def test_existing_run_is_refused_without_resume(tmp_path: Path, existing: str):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / existing).write_bytes(b"a user's trained weights")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = _train("--preset", "demo", "--data.root", tmp_path / "photos", "--out", run, "--max-steps", "1")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{run} already holds a run ({existing})" in r.stderr
    assert "--resume" in r.stderr and "choose a new --out" in r.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_out_under_a_file_is_one_line(tmp_path: Path):
    (tmp_path / "file.txt").write_text("x")
    r = _train("--preset", "demo", "--data.root", tmp_path, "--out", tmp_path / "file.txt" / "run")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot create the run folder" in lines[0], r.stderr
