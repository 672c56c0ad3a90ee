"""`advseg-eval` as a subprocess: score -> JSON, compare -> table + grid, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from advseg_eval.inception import FID_WEIGHTS_FILENAME, FID_WEIGHTS_SHA256

pytestmark = pytest.mark.real_assets

EVAL = Path(sys.executable).parent / "advseg-eval"
FAST = ["--imgsim-size", "64", "--threads", "1"]


def _run(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(EVAL), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, photo_paths):
    root = tmp_path_factory.mktemp("eval_cli")
    dirs = {name: root / name for name in ("real", "blur", "noise")}
    for d in dirs.values():
        d.mkdir()
    rng = np.random.default_rng(0)
    for p in photo_paths[:6]:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((96, 96), Image.Resampling.LANCZOS)
        im.save(dirs["real"] / f"{p.stem}.png")
        im.filter(ImageFilter.GaussianBlur(2)).save(dirs["blur"] / f"{p.stem}.png")
        noisy = np.clip(np.asarray(im) + rng.normal(0, 20, (96, 96, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(dirs["noise"] / f"{p.stem}.png")
    dirs["cache"] = root / "cache"
    dirs["root"] = root
    return dirs


@pytest.fixture(scope="module")
def scored(folders):
    out = folders["root"] / "blur_eval.json"
    proc = _run(
        "score",
        folders["blur"],
        folders["real"],
        "--metric",
        "imgsim",
        "--metric",
        "imgsim-kid",
        "--metric",
        "psnr",
        "--metric",
        "ssim",
        "--json",
        out,
        "--cache-dir",
        folders["cache"],
        *FAST,
    )
    return proc, out


def test_score_writes_a_json_report(scored):
    proc, out = scored
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    assert set(rep["metrics"]) == {"imgsim_fd", "imgsim_kid", "imgsim_kid_std", "psnr", "ssim"}
    assert rep["metrics"]["imgsim_fd"] > 0
    assert 15 < rep["metrics"]["psnr"] < 40 and 0 < rep["metrics"]["ssim"] < 1
    assert rep["n_gen"] == rep["n_real"] == 6 and rep["resize"] == "pytorch-fid"
    assert all("FID" not in label for label in rep["labels"].values())
    assert "imgsim-ResNet50 Fréchet distance" in proc.stdout
    # the small-set warning reaches the user and the report
    assert "warning: generated set" in proc.stderr and "6 images < 2048 feature dimensions" in proc.stderr
    assert any("6 images < 2048" in w for w in rep["warnings"])
    assert rep["details"]["imgsim-resnet50"]["real_stats_from_cache"] is False
    assert rep["details"]["imgsim-resnet50"]["fd_method"] == "lowrank"  # 6 < 2048: exact low-rank form
    assert Path(rep["details"]["imgsim-resnet50"]["real_stats_cache"]).is_file()


def test_compare_makes_a_table_and_a_grid(scored, folders):
    _, report = scored
    out = folders["root"] / "cmp"
    proc = _run(
        "compare",
        report,
        folders["noise"],
        "--name",
        "blur",
        "--name",
        "noise",
        "--real",
        folders["real"],
        "--metric",
        "imgsim",
        "--metric",
        "psnr",
        "--cache-dir",
        folders["cache"],
        "--out",
        out,
        "--n-images",
        "3",
        "--thumb",
        "48",
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    table = (out / "metrics.md").read_text().splitlines()
    assert table[0].startswith("| run | imgsim-ResNet50 Fréchet distance |")
    rows = {line.split("|")[1].strip(): line for line in table[2:]}
    assert set(rows) == {"blur", "noise"}
    data = json.loads((out / "metrics.json").read_text())
    assert data["noise"]["metrics"]["imgsim_fd"] > 0 and "imgsim_kid" in data["blur"]["metrics"]
    # the real set's statistics were cached by the score run in another process
    assert data["noise"]["details"]["imgsim-resnet50"]["real_stats_from_cache"] is True
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (18 + 3 * (48 + 4) + 4, 3 * (48 + 4) + 4, 3)  # 3 rows x (real, blur, noise)
    tiles = [grid[18:66, 4 + c * 52 : 52 + c * 52].astype(float) for c in range(3)]
    assert all(t.std() > 5 for t in tiles)
    assert np.abs(tiles[0] - tiles[2]).mean() > 3  # noisy tile differs from the real one


def test_fid_and_kid_run_out_of_the_box_on_real_weights(folders):
    out = folders["root"] / "fid.json"
    proc = _run(
        "score", folders["noise"], folders["real"], "--json", out, "--cache-dir", folders["cache"], "--threads", "1"
    )  # default metrics: fid, kid; default weights: the fid-inception asset
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    assert rep["metrics"]["fid"] > 1 and np.isfinite(rep["metrics"]["kid"])  # unbiased KID of 6 images may be < 0
    assert rep["metrics"]["kid_std"] >= 0
    assert rep["labels"]["fid"] == "FID (pytorch-fid Inception-v3)"
    used = rep["details"]["inception-fid"]["weights"]
    assert "inception-2015-12-05" in used  # either accepted file; the report names which
    assert f"inception-fid weights: {used}" in proc.stdout


def test_missing_inception_weights_error_is_actionable(folders, tmp_path):
    env = {**os.environ, "ADVSEG_HOME": str(tmp_path)}
    proc = _run("score", folders["blur"], folders["real"], env=env)  # default metrics: fid, kid
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for part in (
        FID_WEIGHTS_FILENAME,
        FID_WEIGHTS_SHA256,
        str(tmp_path / "weights" / FID_WEIGHTS_FILENAME),
        "--inception-weights",
        "--metric imgsim",
        "advseg assets fetch fid-inception",
    ):
        assert part in proc.stderr, part


def test_bad_inputs_fail_cleanly(folders, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run("score", empty, folders["real"], "--metric", "psnr")
    assert proc.returncode == 2 and "no images found" in proc.stderr and "Traceback" not in proc.stderr
