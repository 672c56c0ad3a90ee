"""The Table 1 command end to end at the tiny scale: train -> export -> score -> results.md,
contact sheet, and a second invocation that trains nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real_assets, pytest.mark.slow]

ARMS = "baseline,binary-soft,binary-hard"
ROOT = Path(__file__).resolve().parents[1]


def _table(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "experiments.table1",
        "--scale",
        "tiny",
        "--datasets",
        "interiors",
        "--schemes",
        "pix2pix",
        "--arms",
        ARMS,
        "--seeds",
        "0",
        "--segmenter",
        "tiny",
        "--set",
        "seg.segmenter_kwargs={width: 4}",
        "--sketch",
        "xdog",
        "--test-limit",
        "2",
        "--threads",
        "1",
        "--root",
        str(tmp / "root"),
        "--out",
        str(tmp / "docs" / "results.md"),
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # experiments/ is not installed: it runs from the repository root (as scripts/reproduce_table.sh does)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    from advseg_sdk.datasets import fetch_dataset

    fetch_dataset("interiors")  # the smallest real dataset; a no-op when built
    tmp = tmp_path_factory.mktemp("table")
    proc = _table(tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc


def test_every_arm_is_trained_exported_scored_and_tabled(first):
    tmp, proc = first
    assert "3 runs: trained 3, scored 3, 0 reused" in proc.stdout
    runs = tmp / "root" / "tiny" / "interiors" / "pix2pix"
    for arm in ARMS.split(","):
        run = runs / arm / "seed0"
        assert (run / "generator.safetensors").is_file()
        assert (run / "model.advseg" / "manifest.json").is_file()
        summary = json.loads((run / "eval" / "summary.json").read_text())
        assert summary["images"] == 2 and "kid" in summary["set_scores"][arm]
        meta = json.loads((run / "table.json").read_text())
        assert meta["train_command"][:3] == ["advseg-train", "--preset", "official-pix2pix"]
        assert {"train", "train_cpu", "export", "eval", "eval_cpu"} <= set(meta["seconds"])
        config = (run / "config.yaml").read_text()
        variant = "none" if arm == "baseline" else "binary"
        assert f"variant: {variant}" in config and "crop_size: 32" in config
    assert "grad: hard" in (runs / "binary-hard" / "seed0" / "config.yaml").read_text()

    text = (tmp / "docs" / "results.md").read_text()
    kid = json.loads((runs / "binary-soft" / "seed0" / "eval" / "summary.json").read_text())
    soft = kid["set_scores"]["binary-soft"]["kid"] * 1e3
    assert f"{soft:.2f} / " in text  # the soft / hard cell of the paper-layout row
    assert "| **interiors** (ours, KID×10³) |" in text and "paper: Bedroom (FID) | 113.1" in text
    assert "FID is not reported" in text and "## Machine" in text and "advseg-train --preset" in text
    sheet = tmp / "docs" / "results" / "interiors-pix2pix.jpg"
    assert sheet.stat().st_size > 0 and "(results/interiors-pix2pix.jpg)" in text


def test_contact_sheet_has_one_column_per_arm(first):
    from advseg_sdk.imageio import read_image

    tmp, _ = first
    sheet = read_image(tmp / "docs" / "results" / "interiors-pix2pix.jpg")
    assert sheet.shape[1] == (2 + 3) * (128 + 2)  # photo, sketch, three arms
    assert sheet.shape[0] > 18  # a header and at least one row


def test_second_invocation_trains_nothing(first):
    tmp, _ = first
    gens = sorted((tmp / "root").rglob("generator.safetensors"))
    before = {p: p.stat().st_mtime_ns for p in gens}
    again = _table(tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 runs: trained 0, scored 0, 3 reused" in again.stdout
    assert "[table] train" not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in gens} == before
    assert (tmp / "docs" / "results.md").is_file()


def test_other_settings_over_the_same_root_are_refused(first):
    tmp, _ = first
    other = _table(tmp, "--lambda-seg", "3")
    assert other.returncode != 0
    assert "trained with other settings" in other.stderr and "--root" in other.stderr
