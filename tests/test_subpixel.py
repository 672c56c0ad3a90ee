"""Sub-pixel rewrite of strided ConvTranspose2d: the same function, and an int8 U-Net bundle
whose up-sampling layers are quantised Convs (real onnxruntime, real photos for calibration)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from advseg_export import export_generator
from advseg_export.calibration import parity_inputs
from advseg_export.onnx_export import export_onnx
from advseg_export.subpixel import SubPixelConvTranspose2d, subpixel_conv_transposes, supports_subpixel
from advseg_train.networks import GeneratorConfig, build_generator, save_generator

# (kernel, stride, padding, output_padding): U-Net up-sampling, ResNet up-sampling, plain 2x, stride 1
CASES = [(4, 2, 1, 0), (3, 2, 1, 1), (2, 2, 0, 0), (3, 1, 1, 0), (5, 3, 1, 0)]


@pytest.mark.parametrize("layout", ["phases", "fused"])
@pytest.mark.parametrize("k,s,p,op", CASES)
def test_subpixel_equals_conv_transpose(k: int, s: int, p: int, op: int, layout: str):
    torch.manual_seed(k * 10 + s)
    deconv = nn.ConvTranspose2d(5, 7, k, s, p, output_padding=op).double()
    assert supports_subpixel(deconv)
    x = torch.randn(2, 5, 9, 11, dtype=torch.double)
    with torch.no_grad():
        want, got = deconv(x), SubPixelConvTranspose2d(deconv, layout).double()(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-12


def test_unsupported_layers_are_refused_or_left_alone():
    odd = nn.ConvTranspose2d(4, 4, 3, 2, 1)  # output 2H-1, not 2H: no clean phase split
    grouped = nn.ConvTranspose2d(4, 4, 4, 2, 1, groups=2)
    assert not supports_subpixel(odd) and not supports_subpixel(grouped)
    with pytest.raises(ValueError, match="sub-pixel"):
        SubPixelConvTranspose2d(odd)
    net = nn.Sequential(odd, nn.ConvTranspose2d(4, 4, 4, 2, 1))
    rewritten, count = subpixel_conv_transposes(net)
    assert count == 1 and isinstance(rewritten[0], nn.ConvTranspose2d)
    assert isinstance(net[1], nn.ConvTranspose2d)  # the original is untouched


def test_rewritten_generator_exports_without_conv_transpose(tmp_path: Path):
    torch.manual_seed(0)
    net = build_generator(GeneratorConfig(arch="resnet_6blocks", ngf=4)).eval()
    rewritten, count = subpixel_conv_transposes(net)
    assert count == 2
    model = export_onnx(rewritten, tmp_path / "g.onnx", (1, 3, 64, 64))
    ops = [n.op_type for n in model.graph.node]
    assert "ConvTranspose" not in ops and ops.count("DepthToSpace") == 2
    x = torch.rand(1, 3, 48, 80) * 2 - 1  # another size: dynamic H/W survives the slicing
    with torch.no_grad():
        ref = net(x).numpy()
    got = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()}
    )[0]
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.real_assets
def test_unet_int8_bundle_quantises_upsampling_as_convs(tmp_path: Path):
    torch.manual_seed(0)
    ckpt = tmp_path / "unet.safetensors"
    save_generator(build_generator(GeneratorConfig(arch="unet_256", ngf=4, norm="instance")), ckpt)
    out = export_generator(
        ckpt,
        tmp_path / "unet.advseg",
        precisions=("fp32", "int8"),
        calib_count=4,
        thresholds={"int8": {"min_psnr": 20.0}},
    )
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.fp32.onnx", "model.int8.onnx"]
    m = json.loads((out / "manifest.json").read_text())
    q = next(a for a in m["artefacts"] if a["precision"] == "int8")["quantization"]
    assert q["subpixel_conv_transpose"] is True and q["exclude_op_types"] == []
    fp32_ops = [n.op_type for n in onnx.load(str(out / "model.fp32.onnx")).graph.node]
    int8 = onnx.load(str(out / "model.int8.onnx"))
    int8_ops = [n.op_type for n in int8.graph.node]
    assert fp32_ops.count("ConvTranspose") == 8  # the fp32 artefact keeps the faster float layer
    assert "ConvTranspose" not in int8_ops and int8_ops.count("DepthToSpace") == 8
    producers = {o: n for n in int8.graph.node for o in n.output}
    convs = [n for n in int8.graph.node if n.op_type == "Conv"]
    assert len(convs) == 8 + 4 * 8  # down-sampling + four phases per up-sampling layer
    assert all(producers[n.input[1]].op_type == "DequantizeLinear" for n in convs)
    assert m["parity"]["model.int8.onnx"]["passed"] is True
    x = parity_inputs("sketch2color", (256, 256)).array[:1]
    runs = [
        ort.InferenceSession(str(out / f), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        for f in ("model.fp32.onnx", "model.int8.onnx")
    ]
    mse = float(np.mean((runs[0] - runs[1]) ** 2))
    assert 10 * np.log10(4.0 / mse) > 20.0
