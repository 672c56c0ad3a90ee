"""ISNet (DIS) PyTorch port: real weights from the ISNet ONNX asset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_segmentation import assert_segmenter_contract

from advseg_train.segmentation import build_segmenter, maps
from advseg_train.segmentation.isnet import ISNetDIS, ISNetSegmenter, load_isnet_onnx_weights

pytestmark = pytest.mark.real_assets


@pytest.fixture(scope="module")
def isnet():
    return build_segmenter("isnet")


def _photo(path, h: int, w: int) -> torch.Tensor:
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((w, h), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (50, 70)])
def test_isnet_contract_at_small_sizes(isnet, photo_paths, size):
    x = _photo(photo_paths[0], *size)
    probs = assert_segmenter_contract(isnet, x)
    assert isnet.class_names == ["foreground", "background"] and isnet.is_thing == [True, False]
    assert probs[:, 0].std() > 1e-3  # not a constant map
    if min(size) >= 96:  # ISNet (trained at 1024²) finds the astronaut once it has some pixels
        fg = probs[:, 0] > 0.5
        assert 0.05 < fg.float().mean() < 0.95


def test_isnet_maps_are_fg_bg_layout(isnet, photo_paths):
    x = _photo(photo_paths[0], 64, 64).requires_grad_(True)
    probs = isnet(x)
    assert maps.binary_channels(isnet) == 3 and maps.multi_channels(isnet) == 3
    soft_b = maps.binary_map(probs, isnet.is_thing, "soft")
    soft_m = maps.multi_map(probs, isnet, "soft")
    torch.testing.assert_close(soft_b, soft_m)  # both are [0, P(fg), P(bg)]
    torch.testing.assert_close(soft_b[:, 1:], probs)
    hard = maps.binary_map(probs, isnet.is_thing, "hard")
    assert hard.grad_fn is None and torch.all(hard[:, 0] == 0)
    assert torch.equal(hard[:, 1].bool(), probs[:, 0].detach() > probs[:, 1].detach())
    soft_b[:, 1].mean().backward()
    assert x.grad.abs().sum() > 0


def test_isnet_segmenter_is_side_output_1(isnet, photo_paths):
    """probs = [p, 1-p], p = sigmoid(side 1) of the network on x/2 (= rgb/255 - 0.5)."""
    x = _photo(photo_paths[1], 64, 96)
    with torch.no_grad():
        p = torch.sigmoid(isnet.net(x / 2)[0])
        torch.testing.assert_close(isnet(x), torch.cat([p, 1 - p], 1), atol=1e-6, rtol=0)


def test_isnet_input_size_option(isnet, photo_paths):
    seg = ISNetSegmenter(isnet.net, input_size=128)
    x = _photo(photo_paths[0], 48, 40)
    assert seg.work_size(48, 40) == (128, 128) and isnet.work_size(48, 40) == (64, 64)
    probs = seg(x)
    assert probs.shape == (1, 2, 48, 40)
    assert not torch.allclose(probs, isnet(x))  # really ran at another size


def test_isnet_missing_asset_names_the_fetch_command(tmp_path, monkeypatch):
    from advseg_sdk.assets import AssetMissingError

    monkeypatch.setenv("ADVSEG_HOME", str(tmp_path))
    with pytest.raises(AssetMissingError, match="advseg assets fetch isnet-fp16"):
        build_segmenter("isnet")


def test_isnet_loader_rejects_a_foreign_onnx(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="/encoder/Conv", pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        initializer=[w],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match="other.onnx: Conv node '/encoder/Conv' has no module"):
        load_isnet_onnx_weights(ISNetDIS(), path)
    with pytest.raises(FileNotFoundError, match="ISNet ONNX file not found"):
        load_isnet_onnx_weights(ISNetDIS(), tmp_path / "absent.onnx")


@pytest.mark.slow
def test_isnet_port_matches_onnxruntime_at_1024(isnet, photo_paths):
    """All six side outputs of the port vs the fp16 ONNX model run by onnxruntime, one real
    photo at 1024² (the only size the ONNX graph runs at)."""
    import onnxruntime as ort
    from PIL import Image

    from advseg_sdk.assets import asset_path

    img = Image.open(photo_paths[0]).convert("RGB").resize((1024, 1024), Image.BILINEAR)
    x = (np.asarray(img, dtype=np.float32) / 255.0 - 0.5).transpose(2, 0, 1)[None].copy()
    sess = ort.InferenceSession(str(asset_path("isnet-fp16")), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[:6]
    with torch.no_grad():
        ours = [torch.sigmoid(o).numpy() for o in isnet.net(torch.from_numpy(x))]
    for i, (a, b) in enumerate(zip(ours, ref), start=1):
        assert a.shape == b.shape == (1, 1, 1024, 1024)
        diff = float(np.abs(a - b).max())
        assert diff < 2e-3, f"side{i}: max |port - onnx| = {diff:.2e}"
    assert 0.05 < (ref[0] > 0.5).mean() < 0.95
