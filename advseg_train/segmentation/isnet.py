"""ISNet (DIS, "IS-Net") salient-object segmenter: a PyTorch port loading the real ONNX weights.

The architecture follows the ONNX graph of asset ``isnet-fp16`` (read with the ``onnx`` package;
the graph is the spec), see :class:`ISNetDIS`. The ONNX model itself only runs at 1024²; this
port runs at any size. Input normalisation (outside the graph): RGB ``x/255 - 0.5``; for our
[-1, 1] images that is simply ``x / 2``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import Segmenter, map_dtype, probabilities, resize, round_up

ONNX_INPUT_SIZE = 1024


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class REBNCONV(nn.Module):
    """3x3 conv (BN folded in) + ReLU; the attribute name matches the ONNX node path."""

    def __init__(self, cin: int, cout: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv_s1(x))


class RSU(nn.Module):
    """Residual U-block RSU-L: L-1 encoder convs with pools between, a dilated bottom conv,
    a mirrored decoder with skip concatenations, and a residual add of the input conv."""

    def __init__(self, height: int, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.height = height
        self.rebnconvin = REBNCONV(cin, cout)
        self.rebnconv1 = REBNCONV(cout, mid)
        for i in range(2, height):
            setattr(self, f"rebnconv{i}", REBNCONV(mid, mid))
        setattr(self, f"rebnconv{height}", REBNCONV(mid, mid, dilation=2))
        for i in range(height - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(2 * mid, mid))
        self.rebnconv1d = REBNCONV(2 * mid, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        enc = [self.rebnconv1(hxin)]
        for i in range(2, self.height):
            enc.append(getattr(self, f"rebnconv{i}")(_pool(enc[-1])))
        hx = getattr(self, f"rebnconv{self.height}")(enc[-1])
        for i in range(self.height - 1, 0, -1):
            skip = enc[i - 1]
            if i < self.height - 1:
                hx = _up(hx, skip)
            hx = getattr(self, f"rebnconv{i}d")(torch.cat([hx, skip], dim=1))
        return hx + hxin


class RSU4F(nn.Module):
    """RSU-4F: no pooling, dilations 1, 2, 4, 8 instead."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.rebnconvin = REBNCONV(cin, cout)
        self.rebnconv1 = REBNCONV(cout, mid, 1)
        self.rebnconv2 = REBNCONV(mid, mid, 2)
        self.rebnconv3 = REBNCONV(mid, mid, 4)
        self.rebnconv4 = REBNCONV(mid, mid, 8)
        self.rebnconv3d = REBNCONV(2 * mid, mid, 4)
        self.rebnconv2d = REBNCONV(2 * mid, mid, 2)
        self.rebnconv1d = REBNCONV(2 * mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat([hx4, hx3], 1))
        hx2d = self.rebnconv2d(torch.cat([hx3d, hx2], 1))
        hx1d = self.rebnconv1d(torch.cat([hx2d, hx1], 1))
        return hx1d + hxin


class ISNetDIS(nn.Module):
    side1: nn.Conv2d  # side1 ... side6 are set in __init__
    """The ISNet (DIS) network. ``forward`` returns the 6 side-output logits at input size.

    * ``conv_in``: 3x3 conv, stride 2, 3 -> 64 (with bias, no BN, no ReLU);
    * encoder RSU7(64,32,64) -> pool -> RSU6(64,32,128) -> pool -> RSU5(128,64,256) -> pool ->
      RSU4(256,128,512) -> pool -> RSU4F(512,256,512) -> pool -> RSU4F(512,256,512);
    * decoder: upsample the deeper output to the skip's size, concatenate, RSU4F(1024,256,512),
      RSU4(1024,128,256), RSU5(512,64,128), RSU6(256,32,64), RSU7(128,16,64);
    * six 3x3 side convs (side1 on the finest decoder stage ... side6 on the bottleneck), each
      upsampled to the input size and passed through a sigmoid. ``side1`` is the main output.

    Every "REBNCONV" is conv 3x3 (dilation d, padding d) + ReLU; the export folded BatchNorm into
    the conv weights and biases, so there is no BN here (exact for a frozen network). Max pools
    are 2x2 stride 2 with ``ceil_mode=True``; upsampling is bilinear with half-pixel centres
    (``align_corners=False``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, 64, 3, stride=2, padding=1)
        self.stage1 = RSU(7, 64, 32, 64)
        self.stage2 = RSU(6, 64, 32, 128)
        self.stage3 = RSU(5, 128, 64, 256)
        self.stage4 = RSU(4, 256, 128, 512)
        self.stage5 = RSU4F(512, 256, 512)
        self.stage6 = RSU4F(512, 256, 512)
        self.stage5d = RSU4F(1024, 256, 512)
        self.stage4d = RSU(4, 1024, 128, 256)
        self.stage3d = RSU(5, 512, 64, 128)
        self.stage2d = RSU(6, 256, 32, 64)
        self.stage1d = RSU(7, 128, 16, 64)
        for i, c in enumerate((64, 64, 128, 256, 512, 512), start=1):
            setattr(self, f"side{i}", nn.Conv2d(c, 1, 3, padding=1))

    def decoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Decoder outputs [hx1d, hx2d, hx3d, hx4d, hx5d, hx6] for normalised input ``x``."""
        hx1 = self.stage1(self.conv_in(x))
        hx2 = self.stage2(_pool(hx1))
        hx3 = self.stage3(_pool(hx2))
        hx4 = self.stage4(_pool(hx3))
        hx5 = self.stage5(_pool(hx4))
        hx6 = self.stage6(_pool(hx5))
        hx5d = self.stage5d(torch.cat([_up(hx6, hx5), hx5], 1))
        hx4d = self.stage4d(torch.cat([_up(hx5d, hx4), hx4], 1))
        hx3d = self.stage3d(torch.cat([_up(hx4d, hx3), hx3], 1))
        hx2d = self.stage2d(torch.cat([_up(hx3d, hx2), hx2], 1))
        hx1d = self.stage1d(torch.cat([_up(hx2d, hx1), hx1], 1))
        return [hx1d, hx2d, hx3d, hx4d, hx5d, hx6]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.decoder_features(x)
        size = x.shape[-2:]
        return [
            F.interpolate(getattr(self, f"side{i}")(f), size=size, mode="bilinear", align_corners=False)
            for i, f in enumerate(feats, start=1)
        ]

    def main_logits(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits of side output 1 (the finest, the model's main output), upsampled to ``size``
        (default: the input size)."""
        hx1d = self.decoder_features(x)[0]
        out = self.side1(hx1d)
        return F.interpolate(out, size=size or x.shape[-2:], mode="bilinear", align_corners=False)


# ------------------------------------------------------------------ weights
def load_isnet_onnx_weights(net: ISNetDIS, onnx_path: str | os.PathLike) -> ISNetDIS:
    """Copy the Conv weights of the ISNet ONNX graph into ``net`` (strict: every Conv node and
    every parameter must match by node path, shape, stride, padding and dilation)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - onnx is a declared dependency
        raise ImportError("loading ISNet weights needs the 'onnx' package: pip install onnx") from exc
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"ISNet ONNX file not found: {path}")
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    params = dict(net.named_parameters())
    modules = dict(net.named_modules())
    loaded: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        key = node.name.strip("/").removesuffix("/Conv").replace("/", ".")
        conv = modules.get(key)
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"{path.name}: Conv node {node.name!r} has no module {key!r} in the port")
        attrs = {
            a.name: list(onnx.helper.get_attribute_value(a))
            for a in node.attribute
            if a.name in ("strides", "pads", "dilations")
        }
        expect = {"strides": list(conv.stride), "pads": list(conv.padding) * 2, "dilations": list(conv.dilation)}
        for name, value in attrs.items():
            if value != expect[name]:
                raise ValueError(f"{path.name}: {node.name} {name}={value}, port has {expect[name]}")
        for tensor_name, pname in zip(node.input[1:3], ("weight", "bias")):
            arr = numpy_helper.to_array(inits[tensor_name])
            p = params[f"{key}.{pname}"]
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(f"{path.name}: {node.name} {pname} shape {arr.shape} != {tuple(p.shape)}")
            with torch.no_grad():
                p.copy_(torch.from_numpy(arr.astype("float32")))
            loaded.add(f"{key}.{pname}")
    missing = sorted(set(params) - loaded)
    if missing:
        raise ValueError(f"{path.name}: no weights for {len(missing)} parameters, e.g. {missing[:3]}")
    return net


# ---------------------------------------------------------------- segmenter
class ISNetSegmenter(Segmenter):
    """fg/bg segmenter: classes ``["foreground", "background"]`` with probabilities ``[p, 1-p]``,
    ``p`` = sigmoid of ISNet's first (finest) side output.

    Args:
        net: an :class:`ISNetDIS` with weights loaded.
        input_size: run the network at this square size (e.g. 1024, ISNet's training size)
            and resize the probabilities back; ``None`` (default) runs at the input size
            rounded up to a multiple of ``size_multiple``.
        size_multiple: see ``input_size``.
    """

    def __init__(self, net: ISNetDIS, input_size: int | None = None, size_multiple: int = 32):
        super().__init__(name="isnet", class_names=["foreground", "background"], is_thing=[True, False])
        if size_multiple < 1:
            raise ValueError(f"size_multiple must be >= 1, got {size_multiple}")
        self.net = net
        self.input_size = input_size
        self.size_multiple = int(size_multiple)
        self.freeze()

    @classmethod
    def from_onnx(cls, onnx_path: str | os.PathLike | None = None, **kwargs) -> ISNetSegmenter:
        """Build from the ISNet ONNX file (default: asset ``isnet-fp16``)."""
        if onnx_path is None:
            from advseg_sdk.assets import asset_path

            onnx_path = asset_path("isnet-fp16")  # AssetMissingError names the fetch command
        return cls(load_isnet_onnx_weights(ISNetDIS(), onnx_path), **kwargs)

    def work_size(self, h: int, w: int) -> tuple[int, int]:
        if self.input_size is not None:
            return (int(self.input_size), int(self.input_size))
        return (round_up(h, self.size_multiple), round_up(w, self.size_multiple))

    def foreground_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) foreground logits for [-1, 1] images ``x``."""
        h, w = x.shape[-2:]
        z = resize(x, self.work_size(h, w)) * 0.5  # [-1,1] -> rgb/255 - 0.5
        return self.net.main_logits(z, size=(h, w))

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        p = probabilities(self.foreground_logits(x), "sigmoid", dtype=map_dtype(x))
        return torch.cat([p, 1.0 - p], dim=1)
