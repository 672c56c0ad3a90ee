"""DeepLabv3 + MobileNetV2 trained on PASCAL VOC 2012 (21 classes), ported to PyTorch from TFLite.

The weights are the uint8 TFLite model vendored in ``data/deeplabv3_mnv2_pascal/`` (Apache-2.0,
Google, from google-coral/test_data; licence and attribution beside it). It is read with the
``tflite`` flatbuffer reader: every tensor and its quantisation (scale, zero point) is read and
dequantised to float32 ``(q - zero_point) * scale``; nothing is executed.
:class:`DeepLabV3MobileNetV2` is the same graph in float. Being a float port of a quantised
model, its argmax agrees with the reference interpreter on most pixels, not all (the test
measures it at 513x513 on real photos).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import coco_panoptic
from .base import Segmenter, map_dtype, probabilities, resize

__all__ = [
    "DEFAULT_TFLITE",
    "VOC_CLASSES",
    "DeepLabV3MobileNetV2",
    "DeepLabVOCSegmenter",
    "TFLiteGraph",
    "load_deeplab_tflite_weights",
    "read_tflite",
]

DATA_DIR = Path(__file__).resolve().parent / "data" / "deeplabv3_mnv2_pascal"
DEFAULT_TFLITE = DATA_DIR / "deeplabv3_mnv2_pascal_quant.tflite"
TFLITE_SHA256 = "350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398"
#: The file's own input size (the network itself runs at any size).
TFLITE_INPUT_SIZE = 513

VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
#: VOC object class -> COCO-panoptic thing class, for the official 135-channel layout.
VOC_TO_COCO: dict[str, str] = {
    "aeroplane": "airplane",
    "bicycle": "bicycle",
    "bird": "bird",
    "boat": "boat",
    "bottle": "bottle",
    "bus": "bus",
    "car": "car",
    "cat": "cat",
    "chair": "chair",
    "cow": "cow",
    "diningtable": "dining table",
    "dog": "dog",
    "horse": "horse",
    "motorbike": "motorcycle",
    "person": "person",
    "pottedplant": "potted plant",
    "sheep": "sheep",
    "sofa": "couch",
    "train": "train",
    "tvmonitor": "tv",
}
#: Channel of VOC "background" in the official layout: 81, the stuff slot no COCO class uses
#: (detectron2's semantic label 0, "things", never emitted as stuff by the released code).
OFFICIAL_BACKGROUND_CHANNEL = coco_panoptic.NUM_THINGS + 1
MULTI_LAYOUTS = ("voc", "official")


# ---------------------------------------------------------------- TFLite reading
_TFLITE_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}


@dataclass
class TFLiteTensor:
    """One tensor of the flatbuffer: shape, storage dtype, quantisation, constant data (or None)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None

    def dequantize(self) -> np.ndarray:
        """Constant data as float32: ``(q - zero_point) * scale`` (per tensor or per channel)."""
        if self.data is None:
            raise ValueError(f"tensor {self.name!r} has no constant data")
        if self.scale is None or self.dtype == np.float32:
            return self.data.astype(np.float32)
        shape = [1] * self.data.ndim
        if self.scale.size > 1:
            shape[self.quantized_dimension] = -1
        scale = self.scale.astype(np.float64).reshape(shape)
        zp = (self.zero_point if self.zero_point is not None else np.zeros(1)).astype(np.float64).reshape(shape)
        return ((self.data.astype(np.float64) - zp) * scale).astype(np.float32)


@dataclass
class TFLiteOp:
    kind: str  # builtin operator name, e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    path: Path
    tensors: list[TFLiteTensor]
    ops: list[TFLiteOp]
    inputs: list[int]
    outputs: list[int]


def _op_options(tfl: Any, kind: str, op: Any) -> dict[str, Any]:
    raw = op.BuiltinOptions()
    if raw is None:
        return {}
    conv = ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor", "FusedActivationFunction")
    spec = {
        "CONV_2D": (tfl.Conv2DOptions, conv),
        "DEPTHWISE_CONV_2D": (tfl.DepthwiseConv2DOptions, (*conv, "DepthMultiplier")),
        "ADD": (tfl.AddOptions, ("FusedActivationFunction",)),
        "AVERAGE_POOL_2D": (
            tfl.Pool2DOptions,
            ("Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth", "FusedActivationFunction"),
        ),
        "RESIZE_BILINEAR": (tfl.ResizeBilinearOptions, ("AlignCorners", "HalfPixelCenters")),
        "CONCATENATION": (tfl.ConcatenationOptions, ("Axis", "FusedActivationFunction")),
    }.get(kind)
    if spec is None:
        return {}
    cls, names = spec
    opts = cls()
    opts.Init(raw.Bytes, raw.Pos)
    return {n: getattr(opts, n)() for n in names}


def read_tflite(path: str | os.PathLike) -> TFLiteGraph:
    """Read every tensor (with quantisation and constant data) and operator of a TFLite file.

    Uses the ``tflite`` package's flatbuffer bindings: a pure reader, nothing in the file runs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TFLite model not found: {path}")
    buf = path.read_bytes()
    if buf[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TFLite flatbuffer (file identifier {buf[4:8]!r}, expected b'TFL3')")
    try:
        import tflite as tfl
    except ImportError as exc:  # pragma: no cover - a dependency of the train extra
        raise ImportError("reading TFLite weights needs the 'tflite' package: pip install 'advseg[train]'") from exc
    model = tfl.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"{path}: expected one subgraph, found {model.SubgraphsLength()}")
    g = model.Subgraphs(0)
    op_names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        codes.append(op_names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "CUSTOM"))
    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        dtype = _TFLITE_DTYPES.get(t.Type())
        if dtype is None:
            raise ValueError(f"{path}: tensor {i} has unsupported TFLite type {t.Type()}")
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scale = zp = None
        qdim = 0
        if q is not None and q.ScaleLength():
            scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32)
            zp = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64) if q.ZeroPointLength() else None
            qdim = int(q.QuantizedDimension())
        data = None
        b = model.Buffers(t.Buffer())
        if b is not None and b.DataLength():
            data = np.frombuffer(b.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape).copy()
        tensors.append(TFLiteTensor(i, t.Name().decode(), shape, dtype, scale, zp, qdim, data))
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        kind = codes[op.OpcodeIndex()]
        ops.append(
            TFLiteOp(
                kind,
                [int(v) for v in op.InputsAsNumpy()],
                [int(v) for v in op.OutputsAsNumpy()],
                _op_options(tfl, kind, op),
            )
        )
    return TFLiteGraph(path, tensors, ops, [int(v) for v in g.InputsAsNumpy()], [int(v) for v in g.OutputsAsNumpy()])


# ---------------------------------------------------------------- network
_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}  # TFLite ActivationFunctionType


def _same_padding(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding (before, after) along one axis: extra pixel after."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


QParams = tuple[float, int]  # (scale, zero point) of a uint8 activation


def fake_quant(x: torch.Tensor, q: QParams | None) -> torch.Tensor:
    """Round ``x`` to the uint8 grid ``q`` and back (what the interpreter stores between ops),
    half away from zero as TFLite's requantisation rounds."""
    if q is None:
        return x
    scale, zp = q
    v = x / scale
    return (torch.clamp(torch.sign(v) * torch.floor(v.abs() + 0.5) + zp, 0, 255) - zp) * scale


class _QuantMixin:
    """``emulate_uint8`` (off by default) rounds outputs to the file's activation grid; only for
    checking the port against the interpreter: rounding has no useful gradient."""

    emulate_uint8 = False

    def _q(self, x: torch.Tensor, q: QParams | None) -> torch.Tensor:
        return fake_quant(x, q) if self.emulate_uint8 else x


class TFConv(_QuantMixin, nn.Module):
    """Convolution with folded BatchNorm (bias), TensorFlow ``SAME`` padding and an activation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 1,
        stride: int = 1,
        dilation: int = 1,
        depthwise: bool = False,
        act: str | None = "relu6",
    ) -> None:
        super().__init__()
        if act not in (None, "relu", "relu6"):
            raise ValueError(f"act must be None, 'relu' or 'relu6', got {act!r}")
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, dilation=dilation, groups=cin if depthwise else 1, bias=True)
        self.k, self.stride, self.dilation, self.depthwise, self.act = k, stride, dilation, depthwise, act
        self.out_q: QParams | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k > 1:
            ph = _same_padding(x.shape[-2], self.k, self.stride, self.dilation)
            pw = _same_padding(x.shape[-1], self.k, self.stride, self.dilation)
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        x = self.conv(x)
        if self.act == "relu6":
            x = F.relu6(x)
        elif self.act == "relu":
            x = F.relu(x)
        return self._q(x, self.out_q)


class InvertedResidual(_QuantMixin, nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6; absent when t=1), 3x3 depthwise (ReLU6), 1x1 linear
    projection, plus the input when stride is 1 and the channel count is unchanged."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int, dilation: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = TFConv(cin, mid, 1) if expand != 1 else None
        self.depthwise = TFConv(mid, mid, 3, stride=stride, dilation=dilation, depthwise=True)
        self.project = TFConv(mid, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout
        self.add_q: QParams | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return self._q(x + y, self.add_q) if self.residual else y


#: (expansion, output channels, stride, dilation) of the 17 blocks at output stride 16.
MOBILENETV2_OS16 = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 24, 1, 1),
    (6, 32, 2, 1),
    (6, 32, 1, 1),
    (6, 32, 1, 1),
    (6, 64, 2, 1),
    (6, 64, 1, 1),
    (6, 64, 1, 1),
    (6, 64, 1, 1),
    (6, 96, 1, 1),
    (6, 96, 1, 1),
    (6, 96, 1, 1),
    (6, 160, 1, 1),
    (6, 160, 1, 2),
    (6, 160, 1, 2),
    (6, 320, 1, 2),
)


class DeepLabV3MobileNetV2(_QuantMixin, nn.Module):
    """The TFLite graph in float: ``forward(x)`` maps [-1, 1] RGB (B,3,H,W) to 21-class logits at
    stride 16 (B,21,ceil(H/16),ceil(W/16)).

    MobileNetV2 (depth 1.0, output stride 16: the last strided block keeps stride 1 and the
    blocks after it use dilation 2), BatchNorm folded into every convolution, an ASPP-lite head
    (1x1 branch + image pooling), 1x1 logits at stride 16. TensorFlow's ``SAME`` padding is
    reproduced for every input size, so the network runs at any size, not only at the file's
    513x513; the image pooling branch is a global average. The segmenter resizes the logits
    bilinearly (``align_corners=True``) to the input size, as the TFLite graph does before its
    ArgMax; its probabilities are their softmax, computed in float32 with autocast off (the
    network itself may run in bf16/fp16), differentiable w.r.t. the input image.
    """

    def __init__(self, num_classes: int = len(VOC_CLASSES)) -> None:
        super().__init__()
        self.stem = TFConv(3, 32, 3, stride=2)
        blocks, cin = [], 32
        for t, c, s, d in MOBILENETV2_OS16:
            blocks.append(InvertedResidual(cin, c, t, s, d))
            cin = c
        self.blocks = nn.ModuleList(blocks)
        self.aspp0 = TFConv(cin, 256, 1, act="relu")
        self.image_pooling = TFConv(cin, 256, 1, act="relu")
        self.concat_projection = TFConv(512, 256, 1, act="relu")
        self.logits = TFConv(256, num_classes, 1, act=None)
        # uint8 grids of the input, the global average pool and the concatenation (from the file)
        self.in_q: QParams | None = None
        self.pool_q: QParams | None = None
        self.concat_q: QParams | None = None

    def set_emulate_uint8(self, on: bool) -> DeepLabV3MobileNetV2:
        """Round every activation to the file's uint8 grid (parity checks) or not (default)."""
        for m in self.modules():
            if isinstance(m, _QuantMixin):
                m.emulate_uint8 = bool(on)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self._q(x, self.in_q))
        for block in self.blocks:
            x = block(x)
        pooled = self.image_pooling(self._q(x.mean(dim=(2, 3), keepdim=True), self.pool_q))
        pooled = self._q(pooled, self.concat_q).expand(-1, -1, *x.shape[-2:])
        x = self.concat_projection(torch.cat([pooled, self.aspp0(x)], dim=1))
        return self.logits(x)

    def inverted_residuals(self) -> list[InvertedResidual]:
        """The MobileNetV2 blocks, in order."""
        return [b for b in self.blocks if isinstance(b, InvertedResidual)]

    def tflite_layers(self) -> list[tuple[str, TFConv]]:
        """(TFLite scope, module) of every convolution, in the graph's operator order."""
        out = [("MobilenetV2/Conv", self.stem)]
        for i, block in enumerate(self.inverted_residuals()):
            scope = "MobilenetV2/expanded_conv" + (f"_{i}" if i else "")
            if block.expand is not None:
                out.append((f"{scope}/expand", block.expand))
            out += [(f"{scope}/depthwise", block.depthwise), (f"{scope}/project", block.project)]
        return out + [
            ("aspp0", self.aspp0),
            ("image_pooling", self.image_pooling),
            ("concat_projection", self.concat_projection),
            ("logits/semantic", self.logits),
        ]


def _qparams(t: TFLiteTensor) -> QParams | None:
    """Per-tensor uint8 (scale, zero point) of an activation, or None if it is not one."""
    if t.dtype != np.uint8 or t.scale is None or t.scale.size != 1:
        return None
    return float(t.scale[0]), int(t.zero_point[0]) if t.zero_point is not None else 0


def load_deeplab_tflite_weights(
    net: DeepLabV3MobileNetV2, path: str | os.PathLike = DEFAULT_TFLITE
) -> DeepLabV3MobileNetV2:
    """Dequantise the TFLite file's weights into ``net``, checking the graph matches it: every
    convolution's scope, kind, shape, stride, dilation, padding and activation, in order."""
    graph = read_tflite(path)
    name = Path(path).name
    convs = [op for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    layers = net.tflite_layers()
    if len(convs) != len(layers):
        raise ValueError(f"{name}: {len(convs)} convolutions in the file, the port has {len(layers)}")
    for op, (scope, mod) in zip(convs, layers):
        w_t, b_t = graph.tensors[op.inputs[1]], graph.tensors[op.inputs[2]]
        where = f"{name}: layer {scope}"
        if not w_t.name.startswith(scope + "/"):
            raise ValueError(f"{where}: the file has {w_t.name.split(';')[0]!r} here")
        o = op.options
        act = _ACTIVATIONS.get(o["FusedActivationFunction"], "?")
        got = (op.kind == "DEPTHWISE_CONV_2D", o["StrideH"], o["DilationHFactor"], act, o["Padding"])
        want = (mod.depthwise, mod.stride, mod.dilation, mod.act, 0)  # Padding 0 = SAME
        if got != want:
            raise ValueError(
                f"{where}: (depthwise, stride, dilation, activation, padding) {got} in the file, {want} in the port"
            )
        w = torch.from_numpy(w_t.dequantize())
        w = w.permute(3, 0, 1, 2) if mod.depthwise else w.permute(0, 3, 1, 2)  # TFLite OHWI / 1HWC -> OIHW
        if tuple(w.shape) != tuple(mod.conv.weight.shape):
            raise ValueError(
                f"{where}: weight {tuple(w.shape)} in the file, {tuple(mod.conv.weight.shape)} in the port"
            )
        with torch.no_grad():
            mod.conv.weight.copy_(w)
            assert mod.conv.bias is not None  # every converted conv has its folded BatchNorm bias
            mod.conv.bias.copy_(torch.from_numpy(b_t.dequantize()))
        mod.out_q = _qparams(graph.tensors[op.outputs[0]])
    adds = [op for op in graph.ops if op.kind == "ADD"]
    residuals = [b for b in net.inverted_residuals() if b.residual]
    if len(adds) != len(residuals):
        raise ValueError(f"{name}: {len(adds)} residual additions in the file, the port has {len(residuals)}")
    for op, block in zip(adds, residuals):
        block.add_q = _qparams(graph.tensors[op.outputs[0]])
    by_kind = {op.kind: op for op in graph.ops}
    net.in_q = _qparams(graph.tensors[graph.inputs[0]])
    if "AVERAGE_POOL_2D" in by_kind:
        net.pool_q = _qparams(graph.tensors[by_kind["AVERAGE_POOL_2D"].outputs[0]])
    if "CONCATENATION" in by_kind:
        net.concat_q = _qparams(graph.tensors[by_kind["CONCATENATION"].outputs[0]])
    resizes = [op for op in graph.ops if op.kind == "RESIZE_BILINEAR"]
    if not all(op.options.get("AlignCorners") for op in resizes):
        raise ValueError(f"{name}: expected align_corners bilinear resizes")
    return net


# ---------------------------------------------------------------- segmenter
class DeepLabVOCSegmenter(Segmenter):
    """21 PASCAL VOC classes; ``background`` is the only non-thing class, so the binary map is
    ``[0, P(any object), P(background)]``.

    Args:
        net: a :class:`DeepLabV3MobileNetV2` with weights loaded.
        input_size: run the network at this square size (e.g. 513, the file's) and resize the
            logits back; ``None`` (default) runs at the input's own size.
        multi_layout: ``"voc"`` (default): the multi-class map is ``[0, background, aeroplane,
            ..., tvmonitor]`` (22 channels); ``"official"``: the released code's 135-channel
            COCO-panoptic layout, each VOC object class at its COCO thing's channel and
            background at channel 81 (the stuff slot no COCO class uses).
        emulate_uint8: round every activation to the file's uint8 grid, as the TFLite
            interpreter does (for parity checks only: its gradient is zero almost everywhere).
    """

    def __init__(
        self,
        net: DeepLabV3MobileNetV2,
        input_size: int | None = None,
        multi_layout: str = "voc",
        emulate_uint8: bool = False,
    ) -> None:
        if multi_layout not in MULTI_LAYOUTS:
            raise ValueError(f"multi_layout must be one of {MULTI_LAYOUTS}, got {multi_layout!r}")
        index = channels = None
        if multi_layout == "official":
            things = coco_panoptic.THING_CLASSES
            index = [OFFICIAL_BACKGROUND_CHANNEL] + [1 + things.index(VOC_TO_COCO[c]) for c in VOC_CLASSES[1:]]
            channels = coco_panoptic.OFFICIAL_MULTI_CHANNELS
        super().__init__(
            name="deeplab-voc",
            class_names=VOC_CLASSES,
            is_thing=[c != "background" for c in VOC_CLASSES],
            multi_index=index,
            multi_channels=channels,
        )
        if input_size is not None and int(input_size) < 16:
            raise ValueError(f"input_size must be at least 16 (the network's stride), got {input_size}")
        self.net = net
        self.input_size = None if input_size is None else int(input_size)
        self.multi_layout = multi_layout
        self.emulate_uint8 = bool(emulate_uint8)
        net.set_emulate_uint8(self.emulate_uint8)
        self.freeze()

    @classmethod
    def from_tflite(cls, tflite_path: str | os.PathLike | None = None, **kwargs: Any) -> DeepLabVOCSegmenter:
        """Build from the TFLite file (default: the vendored one)."""
        path = Path(tflite_path) if tflite_path is not None else DEFAULT_TFLITE
        return cls(load_deeplab_tflite_weights(DeepLabV3MobileNetV2(), path), **kwargs)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 21, H, W) class logits for [-1, 1] images ``x`` (bilinear, align_corners, as the
        TFLite graph resizes its logits)."""
        h, w = x.shape[-2:]
        z = resize(x, (self.input_size, self.input_size)) if self.input_size else x
        out = F.interpolate(self.net(z), size=(h, w), mode="bilinear", align_corners=True)
        return fake_quant(out, self.net.logits.out_q) if self.emulate_uint8 else out

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        return probabilities(self.logits(x), "softmax", dtype=map_dtype(x))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", input_size={self.input_size}, multi_layout={self.multi_layout!r}"
