"""The real path: HED with its real BSDS500 weights exported to fp32 ONNX, parity vs PyTorch at odd
sizes (dynamic height/width), and the bundle runs through the SDK's SketchExtractor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from advseg_export import export_hed
from advseg_export.calibration import fit_square
from advseg_export.onnx_export import dynamic_dims
from advseg_sdk.imageio import read_image

pytestmark = pytest.mark.real_assets


@pytest.fixture(scope="module")
def hed_bundle(tmp_path_factory) -> Path:
    return export_hed(tmp_path_factory.mktemp("hed") / "hed.advseg")


@pytest.fixture(scope="module")
def hed_torch():
    from advseg_train.hed import load_hed

    return load_hed()


def _photos(photo_paths, hw: tuple[int, int], n: int) -> np.ndarray:
    imgs = [fit_square(read_image(p), hw) for p in photo_paths[:n]]
    return np.stack([i.astype(np.float32).transpose(2, 0, 1) / 255.0 for i in imgs])


def test_hed_manifest(hed_bundle: Path):
    m = json.loads((hed_bundle / "manifest.json").read_text())
    assert m["task"] == "photo2sketch" and m["architecture"]["name"] == "hed"
    assert m["input"]["range"] == [0, 1] and m["input"]["size_multiple"] == 1
    assert m["output"]["channels"] == 1 and m["output"]["range"] == [0, 1]
    p = m["parity"]["model.fp32.onnx"]
    assert p["passed"] and p["max_abs"] <= 1e-4
    assert m["provenance"]["source_checkpoint_sha256"] == (
        "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
    )


@pytest.mark.parametrize("hw,batch", [((75, 113), 1), ((128, 96), 2)])
def test_hed_onnx_matches_torch_at_odd_sizes(hed_bundle: Path, hed_torch, photo_paths, hw, batch):
    path = hed_bundle / "model.fp32.onnx"
    assert dynamic_dims(onnx.load(str(path))) == ["batch", 3, "height", "width"]
    x = _photos(photo_paths, hw, batch)
    with torch.no_grad():
        ref = hed_torch(torch.from_numpy(x)).numpy()
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert y.shape == (batch, 1, *hw)
    assert np.abs(y - ref).max() <= 1e-4
    assert ref.max() > 0.5  # real edges were found: the comparison is not between two blank maps


def test_hed_bundle_drives_the_sdk_sketch_extractor(hed_bundle: Path, photo_paths):
    from advseg_sdk import SketchExtractor

    rgb = read_image(photo_paths[1])[:150, :220]
    sketch = SketchExtractor("hed", bundle=hed_bundle).extract(rgb)
    assert sketch.shape == rgb.shape[:2] and sketch.dtype == np.uint8
    dark = float((sketch < 128).mean())
    assert 0.005 < dark < 0.5  # lines on a mostly white page
