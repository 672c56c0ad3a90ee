"""Reduced-precision variants of an fp32 ONNX graph: fp16 (norms kept in fp32) and int8 (QDQ).

:func:`convert_fp16` keeps normalisation in fp32, where fp16 breaks; :func:`quantize_int8`
quantises statically on real images with the settings of :class:`Int8Options`. Their docstrings
give the measurements behind the defaults.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from .onnx_export import ExportError

__all__ = [
    "NORM_OPS",
    "Int8Options",
    "norm_nodes",
    "convert_fp16",
    "quantize_int8",
    "TENSORRT_INT8",
    "asymmetric_zero_points",
    "count_ops",
    "toposort",
    "op_block_summary",
]

#: Normalisation ops kept in fp32 in fp16 graphs and left unquantised in int8 graphs.
NORM_OPS = ("InstanceNormalization", "BatchNormalization", "LayerNormalization", "GroupNormalization")
_REDUCTIONS = ("ReduceMean", "ReduceSumSquare", "ReduceSum")
_CHAIN_OPS = ("Sub", "Pow", "Mul", "Add", "Sqrt", "Div", "Reciprocal")


def norm_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that compute normalisation statistics or apply them.

    The fused norm ops (:data:`NORM_OPS`), and decomposed norms: a ``Sub`` that takes a
    reduction's output (``x - mean``) starts one; the reductions feeding it and every node
    reachable from it through element-wise/reduction ops (``xc * xc``, ``mean``, ``+ eps``,
    ``sqrt``, ``/``, scale and shift) belong to it, up to and including the ``Div`` that applies
    the statistics. Unnamed nodes are named first (in place).
    """
    _name_nodes(model)
    nodes = list(model.graph.node)
    producers = {out: n for n in nodes for out in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    picked: set[str] = {n.name for n in nodes if n.op_type in NORM_OPS}

    def upstream_reductions(n: onnx.NodeProto) -> None:
        for i in n.input:
            p = producers.get(i)
            if p is not None and p.op_type in _REDUCTIONS and p.name not in picked:
                picked.add(p.name)
                upstream_reductions(p)

    seeds = [
        n
        for n in nodes
        if n.op_type == "Sub"
        and any(producers.get(i) is not None and producers[i].op_type in _REDUCTIONS for i in n.input)
    ]
    stack = list(seeds)
    visited: set[str] = set()
    while stack:
        n = stack.pop()
        if n.name in visited:
            continue
        visited.add(n.name)
        picked.add(n.name)
        upstream_reductions(n)
        if n.op_type == "Div":
            continue  # the statistics are applied: the norm ends here (scale/shift may follow)
        for out in n.output:
            for c in consumers.get(out, []):
                if c.name not in visited and (c.op_type in _CHAIN_OPS or c.op_type in _REDUCTIONS):
                    stack.append(c)
    # an affine scale/shift right after the Div (Mul by weight, Add bias) stays with the norm
    for n in nodes:
        if n.op_type == "Div" and n.name in picked:
            cur = n
            for op in ("Mul", "Add"):
                nxt = [c for o in cur.output for c in consumers.get(o, []) if c.op_type == op]
                if len(nxt) != 1 or not _has_initializer_input(model, nxt[0]):
                    break
                picked.add(nxt[0].name)
                cur = nxt[0]
    return [n.name for n in nodes if n.name in picked]


def _has_initializer_input(model: onnx.ModelProto, node: onnx.NodeProto) -> bool:
    inits = {i.name for i in model.graph.initializer}
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return any(i in inits or i in consts for i in node.input)


def _name_nodes(model: onnx.ModelProto) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for i, n in enumerate(model.graph.node):
        if not n.name:
            name = f"{n.op_type}_{i}"
            while name in used:
                name += "_"
            n.name = name
            used.add(name)


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i not in available})[:5]
            raise ExportError(f"graph has a cycle or dangling inputs: {missing}")
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
        for n in ready:
            ordered.append(n)
            available.update(n.output)
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def count_ops(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in model.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return dict(sorted(counts.items()))


def convert_fp16(model: onnx.ModelProto, keep_norm_fp32: bool = True) -> onnx.ModelProto:
    """fp16 copy of ``model`` with fp32 inputs/outputs; with ``keep_norm_fp32`` the nodes from
    :func:`norm_nodes` stay fp32 (Casts inserted around them). ``keep_norm_fp32=False`` exists
    to measure what keeping them costs/saves; bundles always use the default.

    The converter is the one that ships with onnxruntime (``onnxruntime.transformers.float16``,
    the same code as onnxconverter-common) with an op block list: normalisation nodes
    (InstanceNormalization, BatchNormalization, Layer/GroupNormalization, and the
    ReduceMean/Sub/Pow/Add/Sqrt/Div chains they decompose into) stay fp32 with Casts around them.
    Why: a per-image mean/variance over H x W values is where fp16 breaks (E[x^2] overflows at
    |x| > 256, near-constant channels divide fp16 rounding noise by a tiny standard deviation);
    TensorRT and ONNX Runtime GPU run such nodes in fp16 when the graph says so. ONNX Runtime CPU
    cannot show it: it has no fp16 kernels for these ops on x86, inserts Casts and computes in
    fp32 (an fp16 graph with fp16 norms scored 71.0 dB there, the kept-fp32 one 66.0 dB because
    its explicit Casts round activations at each norm; random-init resnet ngf64, real sketches).
    Emulating fp16 compute in PyTorch (every activation fp16) on the official resnet_9blocks ngf16
    fixture: norms in fp16 66.2 dB, norms in fp32 68.1 dB; that random-init net's norm inputs stay
    small (max |x - mean| 11.5), trained nets have larger ones.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.ModelProto.FromString(model.SerializeToString())  # never modify the caller's
    keep = norm_nodes(model) if keep_norm_fp32 else []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "values clipped to fp16 range" notes on tiny weights
            out = convert_float_to_float16(
                model,
                keep_io_types=True,
                node_block_list=keep,
                disable_shape_infer=False,
            )
        toposort(out.graph)  # the converter appends its input Casts after their consumers
        onnx.checker.check_model(out, full_check=True)
    except Exception as exc:
        raise ExportError(f"fp16 conversion failed: {exc}") from exc
    return out


@dataclass(frozen=True)
class Int8Options:
    """Knobs of :func:`quantize_int8` (the defaults are what bundles use)."""

    per_channel: bool = True
    reduce_range: bool = True  # 7-bit weights: no int16 saturation in the AVX2 u8s8 kernels
    exclude_norm: bool = True
    quant_format: str = "QDQ"  # or "QOperator"
    calibrate_method: str = "MinMax"  # or "Percentile", "Entropy"
    percentile: float = 99.99  # for "Percentile"
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    op_types: tuple[str, ...] | None = None  # None: every op type the quantiser supports
    exclude_op_types: tuple[str, ...] = ()  # op types left in float (e.g. "ConvTranspose")
    #: quantise from a graph whose strided ConvTranspose layers are rewritten as sub-pixel Convs
    #: (:mod:`advseg_export.subpixel`), so they run on the int8 Conv kernels instead of float
    subpixel_conv_transpose: bool = False
    extra_options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {
            k: getattr(self, k)
            for k in (
                "per_channel",
                "reduce_range",
                "exclude_norm",
                "quant_format",
                "calibrate_method",
                "activation_type",
                "weight_type",
            )
        }
        if self.calibrate_method == "Percentile":
            d["percentile"] = self.percentile
        d["op_types"] = list(self.op_types) if self.op_types else None
        d["exclude_op_types"] = list(self.exclude_op_types)
        d["subpixel_conv_transpose"] = self.subpixel_conv_transpose
        return d


#: TensorRT's ONNX parser takes explicit int8 only as symmetric quantisation: signed int8
#: activations and weights with every zero-point 0, biases left in float (it quantises them
#: itself). The default CPU artefact (uint8 activations, asymmetric, int32 biases) is rejected
#: there; this one is built for TensorRT.
TENSORRT_INT8 = Int8Options(
    activation_type="QInt8",
    weight_type="QInt8",
    reduce_range=False,
    calibrate_method="MinMax",
    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
)


def asymmetric_zero_points(model: onnx.ModelProto) -> list[str]:
    """Zero-point initialisers of Q/DQ nodes that TensorRT would reject: non-zero, or not int8."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    bad: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        t = inits.get(node.input[2])
        if t is None:
            continue
        arr = numpy_helper.to_array(t)
        if t.data_type != onnx.TensorProto.INT8 or bool((arr != 0).any()):
            bad.append(t.name)
    return sorted(set(bad))


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    reader,
    options: Int8Options = Int8Options(),
) -> onnx.ModelProto:
    """Static int8 quantisation of the fp32 graph at ``fp32_path`` into ``out_path``.

    ``reader`` is an onnxruntime ``CalibrationDataReader`` (e.g.
    :class:`~advseg_export.calibration.ArrayCalibrationReader`) over real images.

    Runs onnxruntime's ``quant_pre_process`` (symbolic shape inference + graph clean-up) and
    ``quantize_static`` in QDQ format with per-channel int8 weights and uint8 activations. Norm
    nodes are excluded by default (their inputs/outputs stay float). Weights use ``reduce_range``
    (7 bits): without VNNI, ONNX Runtime's x86 u8s8 kernels add pairs of u8*s8 products in int16
    (VPMADDUBSW), which saturates with full-range weights; measured on the official
    resnet_9blocks ngf16 fixture: 24.3 dB (8-bit) vs 27.8 dB (7-bit) PSNR with MinMax, at the
    same speed (u8u8 kernels avoid it too but ran ~1.3x slower). Generators calibrate with the
    99.99th percentile (31.4 dB on that fixture, vs 27.8 dB MinMax); HED keeps MinMax (39.3 dB;
    the percentile clips its large logits: 36.3 dB). Generators leave ConvTranspose in float:
    ONNX Runtime CPU has no int8 kernel for it, so a quantised one only adds a per-run
    DequantizeLinear of its weights (unet_256 ngf64 int8 ran ~10-15% faster without it). U-Nets
    instead quantise from a sub-pixel graph, where each up-sampling layer is four Convs plus
    DepthToSpace (``subpixel_conv_transpose``). Measured on unet_256 ngf64 at 256², 2 threads,
    with 8 calibration sketches: int8 97 ms -> 75 ms, PSNR vs fp32 41.8 -> 40.7 dB. For
    resnet_9blocks, where ConvTranspose is 7 % of the time, the gain was 487 -> 453 ms for
    -0.4 dB, so ResNets keep the float ConvTranspose.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=out_path.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        except Exception as exc:
            raise ExportError(f"int8: quant_pre_process failed on {fp32_path}: {exc}") from exc
        model = onnx.load(str(pre))
        exclude = norm_nodes(model) if options.exclude_norm else []
        exclude += [n.name for n in model.graph.node if n.op_type in options.exclude_op_types and n.name]
        if exclude:
            onnx.save(model, str(pre))  # norm_nodes may have named unnamed nodes
        extra: dict = {"ActivationSymmetric": False, "WeightSymmetric": True}
        if options.calibrate_method == "Percentile":
            extra["CalibPercentile"] = float(options.percentile)
        extra.update(options.extra_options)
        try:
            # the calibrators print progress to stdout and log notes on the root logger: keep
            # stdout clean for the CLI (it prints the bundle path there)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
                warnings.simplefilter("ignore")
                quantize_static(
                    str(pre),
                    str(out_path),
                    reader,
                    quant_format=getattr(QuantFormat, options.quant_format),
                    per_channel=options.per_channel,
                    reduce_range=options.reduce_range,
                    activation_type=getattr(QuantType, options.activation_type),
                    weight_type=getattr(QuantType, options.weight_type),
                    calibrate_method=getattr(CalibrationMethod, options.calibrate_method),
                    nodes_to_exclude=exclude,
                    op_types_to_quantize=list(options.op_types) if options.op_types else None,
                    extra_options=extra,
                )
        except Exception as exc:
            raise ExportError(f"int8: quantize_static failed: {exc}") from exc
    out = onnx.load(str(out_path))
    try:
        onnx.checker.check_model(out, full_check=True)
    except Exception as exc:
        raise ExportError(f"int8: onnx.checker rejected the quantised graph: {exc}") from exc
    return out


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def op_block_summary(model: onnx.ModelProto, names: Iterable[str]) -> dict[str, int]:
    """Op-type counts of the named nodes (for reports)."""
    wanted = set(names)
    counts: dict[str, int] = {}
    for n in model.graph.node:
        if n.name in wanted:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts
