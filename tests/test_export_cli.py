"""`advseg-export` as a subprocess on official-format checkpoints, and the SDK colouring a real
sketch from the bundles it writes (CPU, no torch in the SDK path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advseg_sdk.files import sha256_file

pytestmark = pytest.mark.real_assets

EXE = Path(sys.executable).parent / "advseg-export"


def _cli(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(EXE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


def _real_sketch(photo_paths, hw: tuple[int, int]) -> np.ndarray:
    from advseg_export.calibration import fit_square, photo_to_sketch_rgb
    from advseg_sdk.imageio import read_image

    return photo_to_sketch_rgb(fit_square(read_image(photo_paths[3]), hw), "xdog")


@pytest.mark.slow
@pytest.mark.parametrize(
    "fixture,arch,layout",
    [
        ("resnet_9blocks_batch_dropout_ngf16_bnstats_net.pth", "resnet_9blocks", "advsegloss"),
        ("upstream_unet_256_ngf4_bnstats_net.pth", "unet_256", None),
    ],
)
def test_cli_exports_official_checkpoint_and_colorizer_colours_a_sketch(
    official_fixtures_dir: Path, tmp_path: Path, photo_paths, fixture: str, arch: str, layout: str | None
):
    from advseg_sdk import Colorizer

    ckpt = official_fixtures_dir / fixture
    out = tmp_path / f"{arch}.advseg"
    r = _cli(ckpt, "-o", out, "--fp16", "--int8", "--calib-count", "4")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [str(out.absolute())]  # stdout: just the bundle path
    assert "model.int8.onnx" in r.stderr and "PSNR" in r.stderr

    m = json.loads((out / "manifest.json").read_text())
    assert m["architecture"]["name"] == arch
    assert m["provenance"]["source_checkpoint_sha256"] == sha256_file(ckpt)
    if layout:
        assert m["provenance"]["source_layout"].startswith(layout)
    assert [a["precision"] for a in m["artefacts"]] == ["fp32", "fp16", "int8"]
    for a in m["artefacts"]:
        assert sha256_file(out / a["file"]) == a["sha256"]
        p = m["parity"][a["file"]]
        assert p["passed"] is True and p["max_abs"] is not None
    assert m["parity"]["model.fp32.onnx"]["max_abs"] <= 1e-4
    assert m["parity"]["model.fp16.onnx"]["psnr"] >= 40
    assert m["parity"]["model.int8.onnx"]["psnr"] >= 30

    sketch = _real_sketch(photo_paths, (200, 300))  # not the network size: padded or resized
    outs = {}
    for precision in ("fp32", "fp16", "int8"):
        col = Colorizer(out, providers=["CPUExecutionProvider"], precision=precision)
        y = col.colorize(sketch)
        assert y.shape == (200, 300, 3) and y.dtype == np.uint8
        outs[precision] = y.astype(np.float64)
    assert outs["fp32"].std() > 0.5  # a real picture, not a constant
    assert np.abs(outs["fp16"] - outs["fp32"]).mean() < 2.0
    assert np.abs(outs["int8"] - outs["fp32"]).mean() < 12.0


def test_cli_errors_are_one_clear_line(official_fixtures_dir: Path, tmp_path: Path):
    missing = tmp_path / "nope_net_G.pth"
    r = _cli(missing, "-o", tmp_path / "a.advseg")
    assert r.returncode == 1
    assert "checkpoint not found" in r.stderr and str(missing) in r.stderr
    assert "Traceback" not in r.stderr

    r = _cli(
        official_fixtures_dir / "upstream_unet_256_ngf4_bnstats_net.pth",
        "-o",
        tmp_path / "b.advseg",
        "--trt",
        "--max-shape",
        "4x3x256x256",
    )
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert r.returncode == 1
        assert "--trt requires the tensorrt Python package and an NVIDIA GPU" in r.stderr
        assert "Traceback" not in r.stderr

    r = _cli(missing, "-o", tmp_path / "c.advseg", "--max-shape", "4x3x256")
    assert r.returncode == 2 and "NxCxHxW" in r.stderr

    empty_home = tmp_path.parent / f"{tmp_path.name}-home"
    empty_home.mkdir()
    r = _cli("hed", "-o", tmp_path / "d.advseg", env={"ADVSEG_HOME": str(empty_home)})
    assert r.returncode == 1 and "advseg assets fetch hed-bsds500" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
